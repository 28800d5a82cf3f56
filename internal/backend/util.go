package backend

import "sort"

// sortedKeys gives map iteration a fixed order so that parsing (and the
// SQL generated from it) is deterministic.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
