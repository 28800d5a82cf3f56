package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/storaged/storaged/internal/backend"
	"github.com/storaged/storaged/internal/testutil"
)

func explain(t *testing.T, b *RepositoryBackend, sql string, args ...any) string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), "EXPLAIN "+sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// TestIndexesAreUsed asserts from EXPLAIN that the generated SQL uses the
// indexes ensureIndex builds, and that the claim walks its partial index.
func TestIndexesAreUsed(t *testing.T) {
	ctx := context.Background()
	b := openRepo(t, testutil.PostgresDB(t))
	r := b.Repository("plans").(*repository)
	ct, err := r.tableForWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	table := ct.name
	// Values rare enough (10 records each) that walking the table in id
	// order for a page of 10 costs more than the index: in a table of its
	// own, the collection's primary key is a real alternative.
	for i := 0; i < 3000; i++ {
		if _, err := b.pool.Exec(ctx, `INSERT INTO `+table+` (id, doc) VALUES ($1, $2::jsonb)`,
			fmt.Sprint("id", i), fmt.Sprintf(`{"status":"s%d","owner":{"team":"t%d"},"email":"%d@x"}`, i%300, i%300, i)); err != nil {
			t.Fatal(err)
		}
	}
	specs := []backend.IndexSpec{
		{Name: "by_status", Fields: []backend.Path{{"status"}}},
		{Name: "by_team", Fields: []backend.Path{{"owner", "team"}}},
		{Name: "email", Fields: []backend.Path{{"email"}}, Unique: true},
	}
	for _, s := range specs {
		if err := r.EnsureIndex(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.pool.Exec(ctx, "ANALYZE "+table); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ filter, index string }{
		{`{"status": "s3"}`, "by_status"},
		{`{"owner.team": "t1", "status": {"$ne": "x"}}`, "by_team"},
		{`{"email": "5@x"}`, "email"},
		{`{"status": {"$in": ["s1", "s2"]}}`, "by_status"},
	}
	for _, c := range cases {
		f, err := backend.ParseFilter([]byte(c.filter))
		if err != nil {
			t.Fatal(err)
		}
		var spec backend.IndexSpec
		for _, s := range specs {
			if s.Name == c.index {
				spec = s
			}
		}
		name, _ := indexSQL(table, "plans", spec)
		comp := &compiler{}
		where := comp.filter(f)
		for _, q := range []string{
			`SELECT doc::text FROM ` + table + ` WHERE ` + where + ` ORDER BY ` + orderBy(nil) + ` LIMIT 10`,
			`SELECT count(*) FROM ` + table + ` WHERE ` + where,
		} {
			if plan := explain(t, b, q, comp.args...); !strings.Contains(plan, name) {
				t.Errorf("filter %s does not use index %s (%s):\n%s", c.filter, c.index, name, plan)
			}
		}
	}
	plan := explain(t, b, claimSQL, nil, "q", "token", int64(1000), 1, `{}`)
	if !strings.Contains(plan, "storaged_jobs_claim") {
		t.Errorf("the claim does not walk storaged_jobs_claim:\n%s", plan)
	}
}
