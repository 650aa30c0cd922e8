// Renders tests/go/templates/cases.json with Go's text/template and sprig.GenericFuncMap()
// (minus env, expandenv, getHostByName: as Bitnami Sealed Secrets' Unseal does) and prints
// the known-answer vectors gitseal's tests use. Regenerate from the repository root with:
//   (cd tests/go/templates && go run . < cases.json) > tests/fixtures/templates.json
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

type Case struct {
	Name     string            `json:"name"`
	Template string            `json:"template"`
	Values   map[string]string `json:"values"`
	Expected string            `json:"expected"`
}

func main() {
	var cases []Case
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	funcs := sprig.GenericFuncMap()
	for _, f := range []string{"env", "expandenv", "getHostByName"} {
		delete(funcs, f)
	}
	for i, c := range cases {
		t, err := template.New(c.Name).Funcs(funcs).Parse(c.Template)
		if err != nil {
			panic(c.Name + ": " + err.Error())
		}
		var out bytes.Buffer
		if err := t.Execute(&out, c.Values); err != nil {
			panic(c.Name + ": " + err.Error())
		}
		cases[i].Expected = out.String()
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(cases); err != nil {
		panic(err)
	}
}
