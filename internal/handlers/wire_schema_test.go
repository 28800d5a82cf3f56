package handlers

import (
	stdjson "encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

// schemaNode is the part of JSON Schema that schema/wire.schema.json uses.
type schemaNode struct {
	Ref        string                `json:"$ref"`
	Type       any                   `json:"type"` // a name or a list of names
	Format     string                `json:"format"`
	Enum       []any                 `json:"enum"`
	OneOf      []schemaNode          `json:"oneOf"`
	Properties map[string]schemaNode `json:"properties"`
	Required   []string              `json:"required"`
}

// wireTypes are the Go types behind the schema's object definitions.
var wireTypes = map[string]reflect.Type{
	"ErrorBody":     reflect.TypeFor[errorBody](),
	"ErrorDetail":   reflect.TypeFor[errorDetail](),
	"Backoff":       reflect.TypeFor[backend.Backoff](),
	"JobError":      reflect.TypeFor[backend.JobError](),
	"Job":           reflect.TypeFor[backend.Job](),
	"QueueStats":    reflect.TypeFor[backend.QueueStats](),
	"RateLimit":     reflect.TypeFor[backend.RateLimit](),
	"QueueSettings": reflect.TypeFor[backend.QueueSettings](),
	"Change":        reflect.TypeFor[backend.Change](),
	"BatchResult":   reflect.TypeFor[batchResult](),
}

// wireEnums are the Go string types behind the schema's enums.
var wireEnums = map[string]reflect.Type{
	"ErrorCode": reflect.TypeFor[backend.Code](),
	"JobStatus": reflect.TypeFor[backend.JobStatus](),
}

// TestWireSchema: the schema the Node client's wire types are generated
// from (schema/wire.schema.json) says what the daemon sends: the same
// fields, each with the same JSON type and required exactly when Go never
// leaves it out, and the same error codes and job statuses.
func TestWireSchema(t *testing.T) {
	var schema struct {
		Defs map[string]schemaNode `json:"$defs"`
	}
	if err := stdjson.Unmarshal(testutil.ReadFile(t, "schema/wire.schema.json"), &schema); err != nil {
		t.Fatal(err)
	}
	for name := range schema.Defs {
		_, obj := wireTypes[name]
		_, enum := wireEnums[name]
		if !obj && !enum && name != "Record" {
			t.Errorf("$defs.%s has no Go type in wireTypes or wireEnums", name)
		}
	}

	codes := make([]string, 0, len(statusOf))
	for c := range statusOf {
		codes = append(codes, string(c))
	}
	statuses := []string{string(backend.StatusPending), string(backend.StatusProcessing), string(backend.StatusCompleted),
		string(backend.StatusFailed), string(backend.StatusCancelled)}
	for name, want := range map[string][]string{"ErrorCode": codes, "JobStatus": statuses} {
		var got []string
		for _, v := range schema.Defs[name].Enum {
			s, _ := v.(string)
			got = append(got, s)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("$defs.%s.enum is %q; Go has %q", name, got, want)
		}
	}

	for name, typ := range wireTypes {
		def, ok := schema.Defs[name]
		if !ok {
			t.Errorf("%s (%v) is not in the schema's $defs", name, typ)
			continue
		}
		fields := jsonFields(typ)
		for prop := range def.Properties {
			if _, ok := fields[prop]; !ok {
				t.Errorf("%s.%s is in the schema but %v has no such field", name, prop, typ)
			}
		}
		for prop, f := range fields {
			node, ok := def.Properties[prop]
			if !ok {
				t.Errorf("%s.%s (%v) is missing from the schema", name, prop, f.typ)
				continue
			}
			if got, want := schemaType(node), goType(f.typ, !f.omitEmpty); got != want {
				t.Errorf("%s.%s: the schema says %s, Go (%v) sends %s", name, prop, got, f.typ, want)
			}
			if f.typ == reflect.TypeFor[time.Time]() || f.typ == reflect.TypeFor[*time.Time]() {
				if node.Format != "date-time" {
					t.Errorf("%s.%s is a time: its schema needs format date-time", name, prop)
				}
			}
			if required := slices.Contains(def.Required, prop); required == f.omitEmpty {
				t.Errorf("%s.%s: required is %v in the schema, but Go omitempty is %v", name, prop, required, f.omitEmpty)
			}
		}
	}
}

type jsonField struct {
	typ       reflect.Type
	omitEmpty bool
}

// jsonFields lists the JSON members of struct type t as encoding/json
// (and goccy/go-json) would write them, embedded structs flattened.
func jsonFields(t reflect.Type) map[string]jsonField {
	out := map[string]jsonField{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = jsonField{typ: f.Type, omitEmpty: slices.Contains(strings.Split(opts, ","), "omitempty")}
	}
	return out
}

// goType names the JSON type Go writes for t: "string", "integer",
// "ref:Name" for a type of the schema, "json" for raw JSON; "|null" is
// added for a pointer that is written when nil.
func goType(t reflect.Type, writtenWhenNil bool) string {
	if t.Kind() == reflect.Pointer {
		inner := goType(t.Elem(), false)
		if writtenWhenNil {
			return inner + "|null"
		}
		return inner
	}
	for name, typ := range wireTypes {
		if typ == t {
			return "ref:" + name
		}
	}
	for name, typ := range wireEnums {
		if typ == t {
			return "ref:" + name
		}
	}
	switch {
	case t == reflect.TypeFor[time.Time]():
		return "string"
	case t == reflect.TypeFor[stdjson.RawMessage]():
		return "json"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return "unknown Go type " + t.String()
}

// schemaType names the JSON type a schema node allows, as goType does.
func schemaType(n schemaNode) string {
	switch {
	case n.Ref != "":
		name := strings.TrimPrefix(n.Ref, "#/$defs/")
		if name == "Record" {
			return "json" // the daemon passes records through as raw JSON
		}
		return "ref:" + name
	case len(n.OneOf) > 0:
		var parts []string
		for _, o := range n.OneOf {
			parts = append(parts, schemaType(o))
		}
		return joinTypes(parts)
	case len(n.Enum) > 0:
		return "string" // inline enums are of strings (Backoff.type, Change.op)
	case n.Type == nil:
		return "json"
	}
	switch ty := n.Type.(type) {
	case string:
		return ty
	case []any:
		var parts []string
		for _, p := range ty {
			s, _ := p.(string)
			parts = append(parts, s)
		}
		return joinTypes(parts)
	}
	return "unknown schema type"
}

// joinTypes writes a union as goType does: "null" last.
func joinTypes(parts []string) string {
	null := slices.Contains(parts, "null")
	parts = slices.DeleteFunc(parts, func(s string) bool { return s == "null" })
	slices.Sort(parts)
	if null {
		parts = append(parts, "null")
	}
	return strings.Join(parts, "|")
}
