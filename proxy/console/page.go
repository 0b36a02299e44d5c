package console

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"strings"

	"github.com/valyala/fasthttp"
)

// The page is three embedded files put together once at start: the HTML
// with its stylesheet and script inlined, so "/" is a single answer (the
// browser can load it before it holds the admin token), and a
// Content-Security-Policy that allows exactly those two inline blocks (by
// hash) and fetches to the same origin: nothing from anywhere else, and no
// injected markup could run.
//
//go:embed page/index.html page/app.css page/app.js
var pageFS embed.FS

var page, pageCSP = buildPage()

func buildPage() ([]byte, string) {
	read := func(name string) string {
		b, err := pageFS.ReadFile("page/" + name)
		if err != nil {
			panic(err) // embedded: cannot fail
		}
		return string(b)
	}
	css, js := read("app.css"), read("app.js")
	html := strings.NewReplacer("/*STYLE*/", css, "/*SCRIPT*/", js).Replace(read("index.html"))
	csp := "default-src 'none'; script-src '" + hashSource(js) + "'; style-src '" + hashSource(css) +
		"'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return []byte(html), csp
}

func hashSource(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(h[:])
}

// ServePage answers the page whatever the path: Serve uses it for "/",
// and the admin listener for a browser that has no token yet. Status is
// set by the caller (the admin listener answers it 401 when the token is
// missing: the page then asks for it).
func (c *Console) ServePage(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/html; charset=utf-8")
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	ctx.SetBody(page)
}
