// Command scopegate is an authorization gateway: it checks API keys and user
// JWTs against scoped permissions, then proxies the request upstream or
// answers as a forward-auth server. See README.md and SPEC.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
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

// run dispatches a subcommand and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(args, stdout, stderr)
	case "migrate":
		err = cmdMigrate(args, stdout, stderr)
	case "routes":
		err = cmdRoutes(args, stdout, stderr)
	case "keys":
		err = cmdKeys(args, stdout, stderr)
	case "demo":
		err = cmdDemo(args, stdout, stderr)
	case "healthcheck":
		err = cmdHealthcheck(args, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "scopegate", version)
		return exitOK
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "scopegate: unknown command %q\n", cmd)
		usage(stderr)
		return exitConfig
	}
	return exitCode(err, stderr)
}

// exitCode prints err as one line and maps it to an exit code: 2 for invalid
// configuration or usage, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
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
	fmt.Fprint(w, `usage: scopegate [command]

commands:
  serve                     run the gateway (default)
  demo                      run a self-contained demo (file store, echo upstream)
  migrate [status]          apply or list database migrations
  routes check [FILE] [--strict]
                            validate a routes file
  keys create|rotate|revoke|list
                            manage API keys in PostgreSQL
  version                   print the version

configuration: SCOPEGATE_* environment variables (see README.md)
`)
}
