package preflight

import (
	"cmp"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable writes results as an aligned table, one row per check.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLER\tCHECK\tRESULT\tMISSING ACTION\tDETAIL")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Target, r.Check, strings.ToUpper(string(r.Status)),
			cmp.Or(r.Action, "-"), oneLine(r.Detail))
	}
	return tw.Flush()
}

// oneLine keeps a row on one line; SDK errors can span several.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
