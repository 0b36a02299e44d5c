// Command scopegate is an authorization gateway: it checks API keys and user
// JWTs against scoped permissions, then proxies the request upstream or
// answers as a forward-auth server. See README.md and SPEC.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// topCommand is one `scopegate COMMAND`.
type topCommand struct {
	name, usage, summary string
	// group commands (keys, users, ...) and those with flags parse --help
	// themselves; for the others run prints usage on -h/--help.
	ownHelp bool
	run     func(args []string, stdout, stderr io.Writer) error
}

// commands is every command, in the order `scopegate help` lists them.
// It is a function so the table can name cmdHelp, which reads it.
func commands() []topCommand {
	return []topCommand{
		{name: "serve", summary: "run the gateway (the default command)", run: cmdServe},
		{name: "demo", summary: "run a self-contained demo (file store, echo upstream)", run: cmdDemo},
		{name: "migrate", usage: "[status]", summary: "apply or list database migrations", run: cmdMigrate},
		{name: "routes", usage: "check [FILE] [--strict]", summary: "validate a routes file (no database needed)", run: cmdRoutes},
		{name: "explain", usage: "[flags] METHOD PATH", summary: "run the real decision for a described request and print every step", ownHelp: true, run: cmdExplain},
		{name: "keys", usage: "create|rotate|revoke|suspend|activate|list|show", summary: "manage API keys", ownHelp: true, run: cmdKeys},
		{name: "users", usage: "list|show|add", summary: "list and show users and their grants", ownHelp: true, run: cmdUsers},
		{name: "grants", usage: "list|add|remove", summary: "grant users an action on a module, on a company or a site", ownHelp: true, run: cmdGrants},
		{name: "modules", usage: "list|add|deactivate|activate", summary: "manage modules", ownHelp: true, run: cmdModules},
		{name: "companies", usage: "list|add|deactivate|activate", summary: "manage companies", ownHelp: true, run: cmdCompanies},
		{name: "sites", usage: "list|add|deactivate|activate", summary: "manage sites", ownHelp: true, run: cmdSites},
		{name: "healthcheck", usage: "[--live]", summary: "exit 0 when the local gateway is ready (GET /readyz, or /healthz with --live, on SCOPEGATE_ADMIN_ADDR)", run: cmdHealthcheck},
		{name: "version", summary: "print the version", run: cmdVersion},
		{name: "help", usage: "[COMMAND]", summary: "print this list, or a command's usage", run: cmdHelp},
	}
}

// run dispatches a subcommand and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	name := "serve"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	switch name {
	case "--version", "-v":
		name = "version"
	case "-h", "--help", "-help":
		name = "help"
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		if !c.ownHelp && c.name != "help" && slices.ContainsFunc(args, isHelp) {
			printCommandUsage(stdout, c)
			return exitOK
		}
		return exitCode(c.run(args, stdout, stderr), stderr)
	}
	fmt.Fprintf(stderr, "scopegate: unknown command %q\n", name)
	usage(stderr)
	return exitConfig
}

// cmdVersion prints the version.
func cmdVersion(args []string, stdout, _ io.Writer) error {
	if len(args) > 0 {
		return &usageError{msg: "version takes no arguments"}
	}
	fmt.Fprintln(stdout, "scopegate", version)
	return nil
}

// cmdHelp prints every command, or one command's usage.
func cmdHelp(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if c.ownHelp {
				return c.run([]string{"--help"}, stdout, stderr)
			}
			printCommandUsage(stdout, c)
			return nil
		}
	}
	return &usageError{msg: fmt.Sprintf("help: unknown command %q", args[0])}
}

func printCommandUsage(w io.Writer, c topCommand) {
	fmt.Fprintln(w, strings.TrimSpace("usage: scopegate "+c.name+" "+c.usage))
	fmt.Fprintln(w, "\n"+c.summary)
	fmt.Fprintln(w, "\nconfiguration: SCOPEGATE_* environment variables (docs/configuration.md)")
}

// exitCode prints err as one line and maps it to an exit code: 2 for invalid
// configuration or usage, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	var ec *exitError
	if errors.As(err, &ec) {
		if ec.msg != "" {
			fmt.Fprintln(stderr, "scopegate:", ec.msg)
		}
		return ec.code
	}
	fmt.Fprintln(stderr, "scopegate:", err)
	var ce *ConfigError
	var ue *usageError
	if errors.As(err, &ce) || errors.As(err, &ue) {
		return exitConfig
	}
	return exitFail
}

// usageError is a bad command line (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitError carries an explicit exit code (for example `routes check` exit 1
// after it printed its findings).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usage(w io.Writer) {
	fmt.Fprint(w, "usage: scopegate [command]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(c.name+" "+c.usage), c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nRun `scopegate COMMAND --help` for a command's usage.\nconfiguration: SCOPEGATE_* environment variables (docs/configuration.md)\n")
}
