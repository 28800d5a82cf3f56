package backend

import (
	json "github.com/goccy/go-json"
)

// PrepareCreate validates a document for create, gives it an id if it has
// none, and returns the id and the encoded record. It may set doc["id"].
func PrepareCreate(doc map[string]any) (string, Record, error) {
	if doc == nil {
		return "", nil, Errorf(CodeInvalidArgument, "record must be a JSON object")
	}
	var id string
	switch v := doc["id"].(type) {
	case nil:
		if _, present := doc["id"]; present {
			return "", nil, Errorf(CodeInvalidArgument, "id must be a string, not null")
		}
		id = NewID()
		doc["id"] = id
	case string:
		if err := ValidateID(v); err != nil {
			return "", nil, err
		}
		id = v
	default:
		return "", nil, Errorf(CodeInvalidArgument, "id must be a string")
	}
	rec, err := Encode(doc)
	return id, rec, err
}

// CheckPatch rejects an update patch that names the id.
func CheckPatch(patch map[string]any) error {
	if patch == nil {
		return Errorf(CodeInvalidArgument, "update must be a JSON object")
	}
	if _, ok := patch["id"]; ok {
		return Errorf(CodeInvalidArgument, "id cannot be updated")
	}
	return nil
}

// Merge applies a shallow patch to a copy of doc.
func Merge(doc, patch map[string]any) map[string]any {
	out := make(map[string]any, len(doc)+len(patch))
	for k, v := range doc {
		out[k] = v
	}
	for k, v := range patch {
		out[k] = v
	}
	return out
}

// Marshal encodes v as JSON without HTML escaping. JSON needs no escape
// for '<', '>' or '&', and the default one turns each into six bytes:
// a record or job full of markup would grow sixfold in storage, in memory
// and on the wire. Every encoding of user data goes through here.
func Marshal(v any) ([]byte, error) {
	return json.MarshalWithOption(v, json.DisableHTMLEscape())
}

// Encode encodes a document as a Record, into a buffer of its exact size
// (see encode.go).
func Encode(doc map[string]any) (Record, error) {
	if n, ok := encodedSize(doc); ok {
		return appendValue(make([]byte, 0, n), doc), nil
	}
	b, err := Marshal(doc)
	if err != nil {
		return nil, Errorf(CodeInvalidArgument, "record cannot be encoded as JSON")
	}
	return b, nil
}

// Decode decodes a Record into a document.
func Decode(rec Record) (map[string]any, error) {
	var doc map[string]any
	if err := json.Unmarshal(rec, &doc); err != nil {
		return nil, Errorf(CodeInternal, "stored record is not valid JSON")
	}
	return doc, nil
}
