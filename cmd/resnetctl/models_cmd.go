package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/resnetctl/resnetctl/build"
	"github.com/resnetctl/resnetctl/internal/numfmt"
	"github.com/resnetctl/resnetctl/models"
	"github.com/spf13/cobra"
)

// ModelsOptions are the inputs of `resnetctl models`.
type ModelsOptions struct {
	Streams *Streams
	JSON    bool
}

// NewCmdModels makes `resnetctl models`; runF replaces the run function in tests.
func NewCmdModels(s *Streams, runF func(*ModelsOptions) error) *cobra.Command {
	opts := &ModelsOptions{Streams: s}
	c := &cobra.Command{
		Use:   "models [flags]",
		Short: "List the model catalog",
		Long: `List every preset of the catalog with its family, block, depth, input,
classes, parameters and MACs. Any CIFAR depth 6n+2 is also available as resnetN.`,
		Example: `  resnetctl models
  resnetctl models --json | jq '.[] | select(.family == "cifar") | .name'`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf(c, "models takes no arguments, got %q", args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return modelsRun(opts)
		},
	}
	c.Flags().BoolVar(&opts.JSON, "json", false, "print JSON instead of a table")
	return c
}

type modelEntry struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Params      int64       `json:"params"`
	MACs        int64       `json:"macs"`
	Spec        models.Spec `json:"spec"`
}

func modelsRun(opts *ModelsOptions) error {
	var entries []modelEntry
	for _, name := range models.Names() {
		s, err := models.Lookup(name)
		if err != nil {
			return err
		}
		g, err := build.New(s, build.Options{ShapesOnly: true})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		c := g.Counts()
		entries = append(entries, modelEntry{Name: name, Description: models.About(name), Params: c.Trainable, MACs: c.MACs, Spec: s})
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.Streams.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	tw := tabwriter.NewWriter(opts.Streams.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFAMILY\tBLOCK\tDEPTH\tINPUT\tCLASSES\tPARAMS\tMACS\tDESCRIPTION")
	for _, e := range entries {
		s := e.Spec
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n", e.Name, s.Family, s.Block, s.Depth(), s.Input, s.Classes,
			numfmt.Commas(e.Params), humanSI(e.MACs), e.Description)
	}
	return tw.Flush()
}
