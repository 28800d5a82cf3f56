// Package migrations embeds the numbered SQL migrations of each database:
// sqlite/NNNN_name.sql and postgres/NNNN_name.sql. A migration, once
// released, is never edited: the runner refuses a changed checksum.
package migrations

import "embed"

// FS holds sqlite/*.sql and postgres/*.sql.
//
//go:embed sqlite/*.sql postgres/*.sql
var FS embed.FS
