package backend

import (
	json "github.com/goccy/go-json"
)

// ParseIndexSpec reads back a spec stored in its Canonical form, so that
// a migration can rebuild the indexes it describes.
func ParseIndexSpec(name, canonical string) (IndexSpec, error) {
	var body struct {
		Fields []string `json:"fields"`
		Unique bool     `json:"unique"`
	}
	spec := IndexSpec{Name: name}
	if err := json.Unmarshal([]byte(canonical), &body); err != nil || len(body.Fields) == 0 {
		return spec, Errorf(CodeInternal, "stored index %q has an unreadable definition", name)
	}
	for _, f := range body.Fields {
		p, err := ParsePath(f)
		if err != nil {
			return spec, err
		}
		spec.Fields = append(spec.Fields, p)
	}
	spec.Unique = body.Unique
	return spec, nil
}
