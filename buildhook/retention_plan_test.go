package buildhook

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// A rule's prune reads that rule's rows through the builds_by_rule index,
// also in the generic plan PostgreSQL switches a prepared statement to
// after a few runs (pgx prepares and caches every query), not the whole
// table.
func TestRulePruneQueryUsesTheIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := newDatabase(t)
	if _, err := pool.Exec(ctx, `INSERT INTO builds (id, rule, state, ready_at, trigger, record)
		SELECT to_char(g, 'FM00000000'), 'rule' || (g % 10), 'done', now(), '{}',
			jsonb_build_object('rule', 'rule' || (g % 10), 'status', 'failed', 'error', repeat('x', 400))
		FROM generate_series(1, 10000) g`); err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	sql, args := findQuery(Query{Rule: "rule3"})
	var literals []string
	for _, a := range args {
		switch a := a.(type) {
		case string:
			literals = append(literals, "'"+a+"'")
		case int:
			literals = append(literals, fmt.Sprint(a))
		default:
			t.Fatalf("argument %v of type %T", a, a)
		}
	}
	for _, stmt := range []string{
		"ANALYZE builds",
		"SET plan_cache_mode = force_generic_plan",
		"PREPARE find AS " + sql,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	rows, err := conn.Query(ctx, fmt.Sprintf("EXPLAIN EXECUTE find(%s)", strings.Join(literals, ", ")))
	if err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan.String(), "builds_by_rule") {
		t.Errorf("a rule's records are read without builds_by_rule:\n%s", plan.String())
	}
}
