package broker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rewind-broker/rewind/testclient"
	"github.com/rewind-broker/rewind/testclient/pushsim"
)

// chromiumPath is Debian's chromium, which `make chromium` installs.
const chromiumPath = "/usr/bin/chromium"

// TestDashboardFiles: the static files are served without a key, with a strict CSP, and only to
// GET and HEAD.
func TestDashboardFiles(t *testing.T) {
	srv := &Server{}
	web := httptest.NewServer(srv.DashboardHandler())
	defer web.Close()

	for _, c := range []struct{ path, ctype, contains string }{
		{"/dashboard/", "text/html", `<script src="app.js" defer></script>`},
		{"/dashboard/app.js", "javascript", "readEventStream"},
		{"/dashboard/style.css", "text/css", ".panel"},
	} {
		resp, err := http.Get(web.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), c.ctype) {
			t.Errorf("GET %s: %d %q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(string(body), c.contains) {
			t.Errorf("GET %s: body lacks %q", c.path, c.contains)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("GET %s: CSP %q", c.path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", c.path)
		}
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/dashboard/missing.js", http.StatusNotFound},
		{"POST", "/dashboard/", http.StatusMethodNotAllowed},
		{"HEAD", "/dashboard/app.js", http.StatusOK},
	} {
		req, _ := http.NewRequest(c.method, web.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

// TestDashboardSources: the page loads nothing from other hosts (admin listeners often have no
// internet) and renders API data as text, never as HTML.
func TestDashboardSources(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		b, err := dashboardFiles.ReadFile("dashboard/" + name)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s refers to %q: the dashboard must be self-contained", name, bad)
			}
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(s, bad) {
				t.Errorf("%s uses %s: render API data with textContent", name, bad)
			}
		}
	}
}

// TestDashboardBrowser drives the dashboard in headless Chromium against a real broker with push:
// log in (a wrong key first), watch a session appear, an attach, idle and a push appear live,
// and look the terminal up. It writes a screenshot of the result.
func TestDashboardBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := fmt.Sprintf("the dashboard test needs Debian's chromium at %s: run `make chromium`", chromiumPath)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	w := newPushWorld(t)
	w.addTerminal(alice, "a")
	w.addTerminal(bob, "b")
	streams := &eventStreams{opened: make(chan string, 16)}
	mux := http.NewServeMux()
	mux.Handle("/dashboard/", w.srv.DashboardHandler())
	mux.Handle("/", streams.wrap(w.srv.AdminHandler(testAdminKey)))
	web := httptest.NewServer(mux)
	t.Cleanup(web.Close) // after the browser is gone (cleanups run last first)

	// Which panels this broker can fill: the event stream and the push audit are newer endpoints.
	hasEvents := apiStatus(t, web.URL+"/v1/events?follow=false&limit=1") == http.StatusOK
	auditStatus, auditBody := apiGet(t, fmt.Sprintf("%s/v1/terminals/%d/pushes", web.URL, bob))
	hasAudit := auditStatus != http.StatusNotFound || !strings.Contains(auditBody, "no such endpoint")

	browser, exceptions := startChromium(t)
	// run runs one browser step with a bound of its own, so a stuck step names itself.
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			page, _ := chromedp.Run(browser, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
			t.Fatalf("%s: %v\npage text:\n%s", what, err, page)
		}
	}
	// waitJS waits until a JavaScript expression is truthy.
	waitJS := func(what, expr string) {
		t.Helper()
		run(what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(12*time.Second)))
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}

	run("open the dashboard",
		chromedp.EmulateViewport(1280, 800),
		chromedp.Navigate(web.URL+"/dashboard/"),
		chromedp.WaitVisible(chromedp.CSS("#login-key")))

	// A wrong key is refused, visibly.
	run("wrong key",
		chromedp.SendKeys(chromedp.CSS("#login-key"), "not-the-key"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#login-error")))
	if msg := text("#login-error"); !strings.Contains(msg, "401") {
		t.Fatalf("login error %q does not say 401", msg)
	}
	run("log in",
		chromedp.SendKeys(chromedp.CSS("#login-key"), testAdminKey),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#app")))
	waitJS("health", `document.getElementById('health').textContent === 'broker ok'`)
	if hasEvents {
		waitJS("event stream live", `document.getElementById('events-state').textContent === 'events live'`)
	}

	// A terminal connects: the Sessions panel counts it within a poll or two.
	w.dial(alice, "a")
	waitJS("alice counted", `document.getElementById('sess-active').textContent === '1'`)

	// Bob's phone attaches for FCM and goes idle, keeping its socket.
	device := w.providers.RegisterDevice(pushsim.PlatformFCM, fcmProject)
	b, err := testclient.Dial(ctx(t), w.config(bob, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Attach(ctx(t), testclient.AttachOptions{URL: w.tokenURL("fcm"), Token: device, Platform: "fcm", Name: "bob's phone"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Idle(ctx(t)); err != nil {
		t.Fatal(err)
	}
	waitJS("bob idle", `document.getElementById('sess-idle').textContent === '1' && document.getElementById('sess-active').textContent === '1'`)

	// The phone drops its socket; a text published for bob is stored and wakes him.
	b.Abort()
	w.waitClosed()
	w.publishText(t, bob, 2620009, "dashboard test")
	if p, err := w.providers.Next(ctx(t)); err != nil || p.DeviceToken != device {
		t.Fatalf("no push to bob's phone: %v %v", p, err)
	}
	if hasEvents {
		rowOf := func(typ string) string {
			return fmt.Sprintf(`[...document.querySelectorAll('#events-body tr')].some(r => r.dataset.type === %q && r.querySelector('.terminal').textContent === '%d')`, typ, bob)
		}
		waitJS("attached event", rowOf(EventAttached))
		waitJS("idle event", rowOf(EventIdle))
		waitJS("push event", rowOf(EventPushSent))
		// Newest first: the push is above the attach.
		waitJS("events newest first", `(() => { const types = [...document.querySelectorAll('#events-body tr')].map(r => r.dataset.type);
			return types.indexOf('push_sent') >= 0 && types.indexOf('push_sent') < types.indexOf('attached'); })()`)

		// The stream breaks; bob's phone, woken by the push, connects meanwhile. The page
		// reconnects with Last-Event-ID and shows what it missed, once.
		streams.drop()
		w.dial(bob, "b")
		select {
		case id := <-streams.opened:
			if id == "" {
				t.Fatal("the dashboard reconnected to /v1/events without Last-Event-ID")
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the dashboard did not reconnect to /v1/events")
		}
		waitJS("woken event after the reconnect", rowOf(EventWoken))
		waitJS("bob's second session", fmt.Sprintf(`[...document.querySelectorAll('#events-body tr')].filter(r => r.dataset.type === 'session_opened' && r.querySelector('.terminal').textContent === '%d').length === 2`, bob))
		waitJS("no event shown twice", `(() => { const ids = [...document.querySelectorAll('#events-body tr')].map(r => r.dataset.id);
			return ids.length === new Set(ids).size; })()`)
	} else {
		waitJS("events panel says the endpoint is missing",
			`!document.getElementById('events-msg').hidden && document.getElementById('events-msg').textContent.includes('404')`)
	}

	// Terminal lookup: bob's detail, and his push audit or why there is none.
	run("look bob up",
		chromedp.SendKeys(chromedp.CSS("#lookup-id"), fmt.Sprint(bob)),
		chromedp.Click(chromedp.CSS("#lookup-form button")),
		chromedp.WaitVisible(chromedp.CSS("#lookup-result")))
	if got := text("#d-terminal"); !strings.Contains(got, fmt.Sprint(bob)) || !strings.Contains(got, "2620002") {
		t.Fatalf("terminal detail %q lacks bob's id and user", got)
	}
	if got := text("#d-terminal"); !strings.Contains(got, "idle") && !strings.Contains(got, "active") && !strings.Contains(got, "offline") {
		t.Fatalf("terminal detail %q has no state", got)
	}
	if hasAudit {
		waitJS("push audit rows", `document.querySelectorAll('#audit-body tr').length >= 1`)
	} else {
		waitJS("push audit says the endpoint is missing",
			`!document.getElementById('audit-msg').hidden && document.getElementById('audit-msg').textContent.includes('404')`)
	}

	// The Pushes panel counts the push once /metrics is polled again (every 5 s).
	waitJS("push counted", `(() => { const r = document.querySelector('#push-body tr[data-outcome="sent"]');
		return r && r.querySelector('.total').textContent === '1'; })()`)

	// Nothing secret reaches the page: not the device token, not the token service's code.
	page, err := chromedp.Run(browser, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{device, "s3cret-code", testAdminKey} {
		if strings.Contains(page, secret) {
			t.Errorf("the page shows a secret: %q", secret)
		}
	}

	// Show the push audit at the bottom of the lookup panel, as an operator scrolling there would.
	// The promise settles after two frames, so the screenshot shows the scrolled panel.
	run("scroll to the audit", chromedp.Evaluate[chromedp.Void](`new Promise(done => {
		document.getElementById('audit-body').lastElementChild?.scrollIntoView({block: 'end'});
		requestAnimationFrame(() => requestAnimationFrame(() => done(null)));
	})`, chromedp.EvalAwaitPromise))
	shot, err := chromedp.Run(browser, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	writeScreenshot(t, shot)
	if ex := exceptions(); len(ex) > 0 {
		t.Errorf("the page threw:\n%s", strings.Join(ex, "\n"))
	}
}

// startChromium starts headless Chromium with a fresh profile and returns its tab's context
// and a function listing the page's uncaught exceptions so far. The browser is closed at cleanup.
func startChromium(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// No network but loopback here: keep Chromium from calling home at start.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	// The whole browser session is bounded: a broken page must not hang the package.
	browser, cancelTimeout := context.WithTimeout(browser, 60*time.Second)

	var (
		mu         sync.Mutex
		exceptions []string
		done       = make(chan struct{})
	)
	messages := chromedp.Console(browser)
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() {
				mu.Lock()
				exceptions = append(exceptions, m.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelTimeout()
		cancelBrowser()
		cancelAlloc()
		<-done
	})
	if err := chromedp.Do(browser); err != nil { // starts the browser
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return browser, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), exceptions...)
	}
}

// writeScreenshot keeps the screenshot as a test artifact: in $ARTIFACTS or the test's temp dir,
// and as bin/dashboard.png at the repository root (git-ignored) when bin/ can be made.
func writeScreenshot(t *testing.T, png []byte) {
	t.Helper()
	dir := os.Getenv("ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dashboard screenshot: %s", path)
	bin := filepath.Join("..", "bin") // the test runs in broker/
	if err := os.MkdirAll(bin, 0o755); err == nil {
		if abs, err := filepath.Abs(filepath.Join(bin, "dashboard.png")); err == nil && os.WriteFile(abs, png, 0o644) == nil {
			t.Logf("dashboard screenshot: %s", abs)
		}
	}
}

// eventStreams wraps the admin API to break the dashboard's event streams on demand and to
// report the Last-Event-ID of each stream the dashboard opens after the first.
type eventStreams struct {
	mu     sync.Mutex
	cancel []context.CancelFunc
	n      int
	opened chan string // Last-Event-ID of each following stream after the first
}

func (e *eventStreams) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/events" || r.URL.Query().Get("follow") == "false" {
			h.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		e.mu.Lock()
		e.cancel = append(e.cancel, cancel)
		e.n++
		first := e.n == 1
		e.mu.Unlock()
		if !first {
			select {
			case e.opened <- r.Header.Get("Last-Event-ID"):
			default:
			}
		}
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// drop ends every event stream open now, as a proxy or a network blip would.
func (e *eventStreams) drop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.cancel {
		c()
	}
	e.cancel = nil
}

func apiStatus(t *testing.T, url string) int {
	t.Helper()
	status, _ := apiGet(t, url)
	return status
}

func apiGet(t *testing.T, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
