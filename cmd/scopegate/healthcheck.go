package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"time"
)

// healthcheckTimeout bounds the whole check (the Dockerfile's HEALTHCHECK
// allows 3 s).
const healthcheckTimeout = 2 * time.Second

// cmdHealthcheck runs `scopegate healthcheck [--live]`, the Dockerfile's
// HEALTHCHECK (a distroless image has no curl): GET /readyz (with --live,
// /healthz) on SCOPEGATE_ADMIN_ADDR, exit 0 on 200, else exit 1 with one
// line. Readiness is the default because a gateway that cannot reach its
// store past the stale TTL answers every request 503: the container is not
// healthy. It reads only SCOPEGATE_ADMIN_ADDR, so an unrelated bad variable
// does not mark a running gateway unhealthy.
func cmdHealthcheck(args []string, stdout, stderr io.Writer) error {
	path := "/readyz"
	switch {
	case len(args) == 1 && (args[0] == "--live" || args[0] == "-live"):
		path = "/healthz"
	case len(args) > 0:
		return &usageError{msg: "usage: scopegate healthcheck [--live] (it checks SCOPEGATE_ADMIN_ADDR)"}
	}
	addr := os.Getenv("SCOPEGATE_ADMIN_ADDR")
	if addr == "" {
		addr = adminAddrDefault()
	}
	url, err := adminURL(addr, path)
	if err != nil {
		return &ConfigError{Var: "SCOPEGATE_ADMIN_ADDR", Msg: err.Error()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &ConfigError{Var: "SCOPEGATE_ADMIN_ADDR", Msg: err.Error()}
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return &exitError{code: exitFail, msg: fmt.Sprintf("healthcheck: GET %s: %v", url, unwrapURLError(err))}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return &exitError{code: exitFail, msg: fmt.Sprintf("healthcheck: GET %s: status %d", url, resp.StatusCode)}
	}
	fmt.Fprintf(stdout, "healthcheck: GET %s: 200\n", url)
	return nil
}

// adminURL builds the URL of path on an admin listen address; an empty or
// unspecified host (":9090", "0.0.0.0:9090", "[::]:9090") is checked on
// loopback.
func adminURL(addr, path string) (string, error) {
	hp, err := loopbackHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port", addr)
	}
	return "http://" + hp + path, nil
}

// loopbackHostPort rewrites a listen address whose host is empty or
// unspecified (":8081", "0.0.0.0:8081") to the loopback address a local
// client can dial.
func loopbackHostPort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// adminAddrDefault is the default of Config.AdminAddr, read from its tag so
// it is written down once.
func adminAddrDefault() string {
	f, _ := reflect.TypeOf(Config{}).FieldByName("AdminAddr")
	return f.Tag.Get("default")
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}
