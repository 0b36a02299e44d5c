package main

import "fmt"

// writeFileStore writes the benchmark fixture as a declarative store file.
func writeFileStore(path string) error {
	return fmt.Errorf("-store=file needs the declarative store format; use -store=pg")
}
