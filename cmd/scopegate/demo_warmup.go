package main

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// demoWarmUp sends a few requests through the running gateway before the
// banner is printed, so the operator page already shows allowed requests,
// several denial reasons, clients and routes when it is first opened. Each
// carries the X-Request-Id demo-warmup-N. They use the demo key, the wrong
// secret, the expired and revoked keys and alice's JWT, never demo-limited,
// whose three requests a minute the printed lines use up. With TLS on, the
// warm-up is skipped (its certificate may not be trusted here).
func demoWarmUp(base, keyHeader, userJWT string, logger *slog.Logger) {
	if !strings.HasPrefix(base, "http://") {
		return
	}
	client := &http.Client{Timeout: 5 * time.Second}
	api := base + "/api"
	reqs := []struct{ method, url, header, value string }{
		{"GET", api + "/orders", keyHeader, demoToken},
		{"GET", api + "/orders", keyHeader, demoToken},
		{"POST", api + "/orders", keyHeader, demoToken},
		{"GET", api + "/orders", keyHeader, demoWrongToken},
		{"DELETE", api + "/orders/1", keyHeader, demoToken},
		{"GET", api + "/orders", "", ""},
		{"GET", api + "/orders", keyHeader, "demo-expired.demo-expired-secret"},
		{"GET", api + "/orders", keyHeader, "demo-revoked.demo-revoked-secret"},
		{"GET", api + "/companies/acme/inventory/items", "Authorization", "Bearer " + userJWT},
		{"PUT", api + "/companies/acme/sites/acme-hq/inventory/items/1", "Authorization", "Bearer " + userJWT},
	}
	for i, r := range reqs {
		req, err := http.NewRequest(r.method, r.url, nil)
		if err != nil {
			continue
		}
		req.Header.Set("X-Request-Id", "demo-warmup-"+strconv.Itoa(i+1))
		if r.header != "" {
			req.Header.Set(r.header, r.value)
		}
		resp, err := client.Do(req)
		if err != nil {
			logger.Warn("demo warm-up request failed", slog.String("err", err.Error()))
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
