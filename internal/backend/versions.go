package backend

import (
	"context"
	"time"
)

// Versions, conditional writes, upsert and bulk calls (issue 18).
//
// Every record has a version: 1 when it is created, one more on every
// write to it. It is kept beside the record, never in it, so T stays
// what the caller stored. A record deleted and created again starts at
// 1 again: a version tells the writes of one record apart, not records.

// Item is a record with its version. Rec is nil for a missing record (in
// GetMany's answer).
type Item struct {
	Rec     Record
	Version int64
	// ExpiresAt is when the record expires (Unix ms), 0 for never.
	ExpiresAt int64
}

// WriteParams make a write conditional: IfMatch, when not 0, is the
// version the record must have, or the write is refused with conflict
// and changes nothing.
type WriteParams struct {
	IfMatch int64
	// ExpiresAt, when not 0, is the new expiry (Unix ms) of the record
	// Modify writes; 0 leaves it as it was.
	ExpiresAt int64
}

// PutParams are the conditions of an upsert. IfNoneMatch makes it
// create-only (If-None-Match: *).
type PutParams struct {
	IfMatch     int64
	IfNoneMatch bool
	// ExpiresAt is the expiry (Unix ms) of the record Put writes; 0 for
	// never: a replaced record does not keep the old one's.
	ExpiresAt int64
}

// UpdateManyResult counts the records an updateMany matched and those it
// changed (an operator that leaves a record as it was does not write it).
type UpdateManyResult struct {
	Matched  int64 `json:"matched"`
	Modified int64 `json:"modified"`
}

// MaxGetMany bounds the ids of one getMany.
const MaxGetMany = 1000

// VersionedRepository is what a repository offers beyond DESIGN §1's
// calls. Every adapter implements it; Repository embeds it.
type VersionedRepository interface {
	// Get is FindByID with the version; Rec is nil when there is none.
	Get(ctx context.Context, id string) (Item, error)
	// FindItems is FindMany with versions.
	FindItems(ctx context.Context, q Query) ([]Item, error)
	// GetMany returns one item per id, in the order asked; Rec is nil
	// for ids without a record. ids holds at most MaxGetMany valid ids.
	GetMany(ctx context.Context, ids []string) ([]Item, error)
	// Put stores doc under id, replacing any record there; created
	// reports which. doc's id, if any, must be id. Errors:
	// invalid_argument, conflict (a condition failed, unique index).
	Put(ctx context.Context, id string, doc map[string]any, p PutParams) (item Item, created bool, err error)
	// Modify applies u to the record. Errors: not_found, conflict
	// (IfMatch, unique index), invalid_argument (an operator meets a field
	// of the wrong type: nothing is written).
	Modify(ctx context.Context, id string, u Update, p WriteParams) (Item, error)
	// Remove deletes the record; with IfMatch a missing record or another
	// version is a conflict. Without it, it is Delete.
	Remove(ctx context.Context, id string, p WriteParams) error
	// UpdateMany applies u to every record matching f, all or none: an
	// operator that fails on one record fails the call.
	UpdateMany(ctx context.Context, f Filter, u Update) (UpdateManyResult, error)
	// DeleteMany deletes every record matching f and counts them.
	DeleteMany(ctx context.Context, f Filter) (int64, error)
}

// PreparePut validates an upsert's document: an object whose id, if it
// has one, is the id of the path. It sets doc["id"].
func PreparePut(id string, doc map[string]any) (Record, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	if doc == nil {
		return nil, Errorf(CodeInvalidArgument, "record must be a JSON object")
	}
	if v, ok := doc["id"]; ok && v != id {
		return nil, Errorf(CodeInvalidArgument, "the record's id must be the id of the path (%q) or absent", id)
	}
	doc["id"] = id
	return Encode(doc)
}

// VersionConflict is the error of a failed If-Match.
func VersionConflict(collection, id string, want int64) error {
	return Errorf(CodeConflict, "record %q of %s is not at version %d", id, collection, want)
}

// NotFound is the error of a write to a missing record.
func NotFound(collection, id string) error {
	return Errorf(CodeNotFound, "no record with id %q in %s", id, collection)
}

// Expirer is implemented by repository backends that delete expired
// records in the background (every one: the daemon calls it on a timer).
// An expired record is invisible to every call from the moment it
// expires; this only reclaims its space.
type Expirer interface {
	PurgeExpired(ctx context.Context) (int64, error)
	// SetClock sets the clock that decides expiry (tests inject one).
	SetClock(now func() time.Time)
}

// MaxTTL bounds ttlMs: ten years.
const MaxTTL = 10 * 365 * 24 * time.Hour
