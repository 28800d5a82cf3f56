// Package ui serves the dashboard (issue 20) on its own TCP listener: the
// embedded assets, and the part of the /v1 API the pages call, through
// the very handler the Unix socket serves. What it adds is the guard a TCP
// port needs and a socket's file mode gives for free: a bearer token, a
// read-only mode, an allowlist of routes, and headers that keep a browser
// from loading anything but these assets.
package ui

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net"
	"path"
	"regexp"
	"strings"

	"github.com/valyala/fasthttp"
)

//go:embed assets
var embedded embed.FS

// Assets are the dashboard's files (index.html at the root); the Node
// client's Fastify plugin ships a copy of the same directory.
func Assets() fs.FS {
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// CSP lets the pages load their own scripts, styles and API and nothing
// else: no CDN, no inline script, no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Header is the request header every API call of the pages carries. A
// cross-site page cannot send a custom header without a CORS preflight,
// which this listener never grants, so with it a loopback dashboard
// without a token cannot be driven by another site open in the browser.
const Header = "Storaged-UI"

// ModeHeader says on every answer that the dashboard is read-only.
const ModeHeader = "Storaged-UI-Mode"

// Options configure Handler.
type Options struct {
	// API is the daemon's /v1 handler (handlers.Server.Handler).
	API fasthttp.RequestHandler
	// Token, if set, must come as "Authorization: Bearer <token>" on
	// every API call.
	Token string
	// ReadOnly refuses every route that changes something with 403.
	ReadOnly bool
}

// route is one API route the dashboard calls.
type route struct {
	method string
	path   *regexp.Regexp
	write  bool
}

const seg = `[^/]+`

func r(method, pattern string, write bool) route {
	return route{method, regexp.MustCompile("^" + strings.ReplaceAll(pattern, "{}", seg) + "$"), write}
}

// Routes are what the pages call; the rest of the API (enqueue, dequeue,
// acknowledgements, transactions, record writes) is not served here: the
// dashboard is for looking and for an operator's few actions, and an app
// has its socket for the rest.
var routes = loadRoutes()

// loadRoutes reads assets/routes.json, the one list of the dashboard's
// routes: the Node client's Fastify plugin reads the same file, so that
// both mounts serve exactly the same API.
func loadRoutes() []route {
	b, err := fs.ReadFile(embedded, "assets/routes.json")
	if err != nil {
		panic(err)
	}
	var list []struct {
		Method string `json:"method"`
		Path   string `json:"path"`
		Write  bool   `json:"write"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		panic("assets/routes.json: " + err.Error())
	}
	out := make([]route, len(list))
	for i, l := range list {
		out[i] = r(l.Method, l.Path, l.Write)
	}
	return out
}

// Allowed reports whether method and path are a dashboard route, and
// whether that route changes something.
func Allowed(method, p string) (ok, write bool) {
	for _, rt := range routes {
		if rt.method == method && rt.path.MatchString(p) {
			return true, rt.write
		}
	}
	return false, false
}

// Handler serves the dashboard.
func Handler(o Options) fasthttp.RequestHandler {
	assets := Assets()
	token := []byte(o.Token)
	return func(ctx *fasthttp.RequestCtx) {
		h := &ctx.Response.Header
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		if o.ReadOnly {
			// The pages read it to hide the actions they would be refused.
			h.Set(ModeHeader, "read-only")
		}
		if len(token) == 0 && !loopbackHost(string(ctx.Host())) {
			// Without a token only loopback is served (the config refuses
			// anything else), and a Host that is not a loopback name is a
			// DNS-rebinding page reaching it through the browser.
			fail(ctx, fasthttp.StatusForbidden, "forbidden", "this dashboard answers only to localhost, 127.0.0.1 or [::1] (set STORAGED_UI_TOKEN to serve other names)")
			return
		}
		// The path as sent: the API's router matches it unresolved.
		p := string(ctx.URI().PathOriginal())
		if !strings.HasPrefix(p, "/v1/") {
			serveAsset(ctx, assets, p)
			return
		}
		method := string(ctx.Method())
		ok, write := Allowed(method, p)
		if !ok {
			fail(ctx, fasthttp.StatusNotFound, "not_found", fmt.Sprintf("%s %s is not served on the dashboard listener; use the daemon's socket", method, truncate(p)))
			return
		}
		if len(ctx.Request.Header.Peek(Header)) == 0 {
			fail(ctx, fasthttp.StatusForbidden, "forbidden", "API calls on the dashboard listener need the "+Header+" header (the pages send it)")
			return
		}
		if len(token) > 0 {
			got, found := strings.CutPrefix(string(ctx.Request.Header.Peek("Authorization")), "Bearer ")
			if !found || subtle.ConstantTimeCompare([]byte(got), token) != 1 {
				h.Set("WWW-Authenticate", `Bearer realm="storaged"`)
				fail(ctx, fasthttp.StatusUnauthorized, "unauthenticated", "this dashboard needs its token (STORAGED_UI_TOKEN) as Authorization: Bearer <token>")
				return
			}
		}
		if write && o.ReadOnly {
			fail(ctx, fasthttp.StatusForbidden, "forbidden", "the dashboard is read-only (STORAGED_UI_READONLY=1): "+method+" "+truncate(p)+" is refused")
			return
		}
		// Transactions are the socket's: a Storaged-Tx header here would
		// reach the API's transaction handling.
		ctx.Request.Header.Del("Storaged-Tx")
		o.API(ctx)
		// The API handler resets the response on errors; set the headers
		// again so that every answer carries them.
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		if o.ReadOnly {
			h.Set(ModeHeader, "read-only")
		}
	}
}

func serveAsset(ctx *fasthttp.RequestCtx, assets fs.FS, p string) {
	if !ctx.IsGet() && !ctx.IsHead() {
		fail(ctx, fasthttp.StatusMethodNotAllowed, "invalid_argument", "the dashboard's pages are read with GET")
		return
	}
	name := strings.TrimPrefix(path.Clean(p), "/")
	if name == "" {
		name = "index.html"
	}
	b, err := fs.ReadFile(assets, name)
	if err != nil {
		fail(ctx, fasthttp.StatusNotFound, "not_found", "no such page: "+truncate(p))
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	ctx.SetContentType(ct)
	ctx.SetBody(b)
}

func fail(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	b, _ := json.Marshal(map[string]map[string]string{"error": {"code": code, "message": msg}})
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func truncate(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}

// loopbackHost reports whether a Host header names this machine's
// loopback: localhost or a loopback address, with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckListen validates STORAGED_UI_LISTEN: host:port, and a host that is
// loopback unless a token guards the dashboard.
func CheckListen(addr string, tokenSet bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port such as 127.0.0.1:8080", addr)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", addr)
	}
	if tokenSet {
		return nil
	}
	if host == "" || !loopbackHost(host) {
		return errors.New(addr + " is not a loopback address: the dashboard shows and changes jobs and records, so serving it beyond this machine needs STORAGED_UI_TOKEN (or listen on 127.0.0.1)")
	}
	return nil
}
