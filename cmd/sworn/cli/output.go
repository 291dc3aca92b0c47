package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// outputFormat is the -o/--output flag of every command that prints data:
// text for people, json for scripts. The JSON shapes are documented in
// docs/cli.md and only grow: fields are added, never renamed or removed.
type outputFormat string

const (
	textOutput outputFormat = "text"
	jsonOutput outputFormat = "json"
)

func (f *outputFormat) String() string { return string(*f) }

// Set refuses anything but text and json, so that a typo (-o yaml) is an
// error and not silently text a script then fails to parse.
func (f *outputFormat) Set(s string) error {
	switch outputFormat(s) {
	case textOutput, jsonOutput:
		*f = outputFormat(s)
		return nil
	}
	return fmt.Errorf("want text or json")
}

func (f *outputFormat) Type() string { return "text|json" }

// addOutputFlag gives cmd -o/--output, text by default.
func addOutputFlag(cmd *cobra.Command, f *outputFormat) {
	*f = textOutput
	cmd.Flags().VarP(f, "output", "o", "output format: text or json")
}

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
