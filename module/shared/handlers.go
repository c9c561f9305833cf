package shared

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// HandlerJSON returns the handler objects of a Caddy JSON config whose
// "handler" name match accepts, as JSON, wherever they are nested (routes,
// subroutes, error routes), in a stable order: document order, object keys
// sorted.
func HandlerJSON(cfgJSON []byte, match func(name string) bool) ([]json.RawMessage, error) {
	var root any
	if err := json.Unmarshal(cfgJSON, &root); err != nil {
		return nil, fmt.Errorf("decoding config: %v", err)
	}
	var out []json.RawMessage
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if name, _ := v["handler"].(string); name != "" && match(name) {
				b, _ := json.Marshal(v)
				out = append(out, b)
			}
			for _, k := range slices.Sorted(maps.Keys(v)) {
				walk(v[k])
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(root)
	return out, nil
}
