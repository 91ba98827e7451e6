package broker

import (
	"embed"
	"io/fs"
	"net/http"
)

// dashboardFiles is the operators' live dashboard: plain HTML, JavaScript and CSS with no build
// step and no third-party hosts (admin listeners often have no internet).
//
//go:embed dashboard
var dashboardFiles embed.FS

// dashboardCSP keeps the page to its own files and to the admin API on its own origin. The page
// renders API data with textContent only; the policy is the second line of defence: no inline
// script or style, nothing loaded from elsewhere, no framing.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

// DashboardHandler serves the dashboard's static files under /dashboard/. Mount it on the admin
// listener beside AdminHandler:
//
//	mux.Handle("/dashboard/", srv.DashboardHandler())
//	mux.Handle("/", srv.AdminHandler(key))
//
// The files hold no secrets and need no key. The page asks the operator for the admin key, keeps
// it in the tab's sessionStorage and sends it as "Authorization: Bearer <key>" on every API call
// (GET /healthz, /metrics, /v1/sessions, /v1/events, /v1/terminals/{id}, .../pushes). Panels whose
// endpoint answers 404 say so and keep working otherwise.
func (srv *Server) DashboardHandler() http.Handler {
	sub, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // cannot happen: the directory is embedded at build time
	}
	files := http.StripPrefix("/dashboard", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Embedded files carry no modification time: make browsers revalidate, so a broker
		// upgrade is never shown with the previous version's script.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
