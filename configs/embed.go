// Package configs holds the example configuration shipped with scopegate.
// Only cmd/scopegate imports it, for the files of `scopegate demo`.
package configs

import "embed"

// Demo is the demo data of `scopegate demo`: demo/store.yaml (a declarative
// store with documented demo secrets) and demo/routes.yaml.
//
//go:embed demo
var Demo embed.FS
