package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/scopegate/scopegate/policy"
)

// cmdRoutes runs `scopegate routes check [FILE] [--strict]` (SPEC §4): it
// validates a routes file without a database. Errors are printed one per
// line as FILE:LINE: error: ... and exit 1; shadowed rules are warnings
// (exit 0, or 1 with --strict). FILE defaults to SCOPEGATE_ROUTES_FILE.
func cmdRoutes(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return &usageError{msg: "usage: scopegate routes check [FILE] [--strict]"}
	}
	strict := false
	file := ""
	for _, a := range args[1:] {
		switch {
		case a == "--strict" || a == "-strict":
			strict = true
		case strings.HasPrefix(a, "-") && a != "-":
			return &usageError{msg: fmt.Sprintf("routes check: unknown flag %q", a)}
		case file != "":
			return &usageError{msg: "routes check: more than one FILE"}
		default:
			file = a
		}
	}
	if file == "" {
		file = os.Getenv("SCOPEGATE_ROUTES_FILE")
	}
	if file == "" {
		return &usageError{msg: "routes check: no FILE given and SCOPEGATE_ROUTES_FILE is not set"}
	}
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return &exitError{code: exitFail, msg: fmt.Sprintf("routes check: %v", err)}
	}
	r, warnings, err := policy.ParseRoutes(data)
	if err != nil {
		for _, e := range flattenErrors(err) {
			var re policy.RoutesError
			if errors.As(e, &re) {
				fmt.Fprintf(stderr, "%s:%d: error: %s\n", file, re.Line, re.Msg)
			} else {
				fmt.Fprintf(stderr, "%s: error: %v\n", file, e)
			}
		}
		return &exitError{code: exitFail}
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "%s:%d: warning: %s\n", file, w.Line, w.Msg)
	}
	if strict && len(warnings) > 0 {
		fmt.Fprintf(stderr, "%s: %d warning(s), failing because of --strict\n", file, len(warnings))
		return &exitError{code: exitFail}
	}
	fmt.Fprintf(stdout, "%s: ok (%d routes, %d warnings)\n", file, r.Len(), len(warnings))
	return nil
}

// flattenErrors unwraps an errors.Join tree into its leaves.
func flattenErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrors(e)...)
		}
		return out
	}
	return []error{err}
}
