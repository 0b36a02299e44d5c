package main

// Placeholders for the subcommands still being built; each moves to its own
// file (serve.go, migrate.go, routes.go, keys.go, demo.go) as it lands.

import (
	"errors"
	"io"
)

var errNotBuilt = errors.New("not built yet")

func cmdDemo(args []string, stdout, stderr io.Writer) error { return errNotBuilt }
