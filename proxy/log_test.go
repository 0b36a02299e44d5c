package proxy

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/syncbuf"
)

// decisionLines returns the "decision" records of a JSON log.
func decisionLines(t *testing.T, logs *syncbuf.Buffer) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if m["msg"] == "decision" {
			out = append(out, m)
		}
	}
	return out
}

// TestDecisionLog: one JSON line per denial with the documented attributes
// and no secret; allows only with LogAllowed.
func TestDecisionLog(t *testing.T) {
	for _, logAllowed := range []bool{false, true} {
		buf := &syncbuf.Buffer{}
		e := newEnv(t, envOptions{mutate: func(c *Config) {
			c.Logger = slog.New(slog.NewJSONHandler(buf, nil))
			c.LogAllowed = logAllowed
		}})
		app := e.fix.Token("app")
		jwt := jwtFor(t, "carol", time.Hour)
		e.do(directPeer, reqText("POST", "/api/things", "X-API-Key", app, "X-Request-Id", "log-1"))
		e.do(directPeer, reqText("GET", "/api/companies/acme/sites/acme-hq/x", "Authorization", "Bearer "+jwt, "X-Request-Id", "log-2"))
		e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", app, "X-Request-Id", "log-3"))
		lines := decisionLines(t, buf)
		want := 2
		if logAllowed {
			want = 3
		}
		if len(lines) != want {
			t.Fatalf("LogAllowed=%v: %d decision lines, want %d: %v", logAllowed, len(lines), want, lines)
		}
		first := lines[0]
		for k, v := range map[string]any{"decision": "deny", "reason": "path_not_allowed", "status": float64(403), "method": "POST", "path": "/api/things", "client_ip": "127.0.0.1", "request_id": "log-1", "client_key": "app", "mode": "proxy"} {
			if first[k] != v {
				t.Errorf("%s = %v, want %v (line %v)", k, first[k], v, first)
			}
		}
		// The route by its pattern, never an index.
		if r, ok := first["route"].(string); !ok || !strings.HasPrefix(r, "/") {
			t.Errorf("route = %#v, want the matched route's pattern", first["route"])
		}
		if lines[1]["reason"] != "permission_denied" || lines[1]["user_sub"] != "carol" {
			t.Errorf("user denial line: %v", lines[1])
		}
		all := buf.String()
		for _, secret := range []string{e.fix.Secrets["app"], jwt, app} {
			if strings.Contains(all, secret) {
				t.Errorf("log contains a secret or token")
			}
		}
	}
}
