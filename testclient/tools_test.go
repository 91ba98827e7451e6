package testclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/protocol"
)

func TestSendOnceDelivered(t *testing.T) {
	f := newFakeBroker(t, password, true)
	done := make(chan SendResult, 1)
	go func() {
		res, err := SendOnce(testContext(t), Config{URL: f.url(), ID: alice, Password: password}, SendOptions{To: bob, Text: "hi"})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	s := f.next()
	d := s.expect(protocol.TypeMessageText)
	if m, _ := protocol.DecodeTextMessage(d.Data); m.Destination != bob || m.Text != "hi" {
		t.Errorf("text = %+v", m)
	}
	// A status about someone else's text is not ours.
	s.write(protocol.Datagram{Type: protocol.TypeMessageStatus, Data: protocol.TextStatus{Source: 1, Destination: alice}.Encode()})
	s.write(protocol.Datagram{Type: protocol.TypeMessageStatus, Data: protocol.TextStatus{Source: bob, Destination: alice, Status: protocol.StatusDelivered}.Encode()})
	if res := <-done; res.Outcome != OutcomeDelivered || res.Status == nil || res.Status.Source != bob {
		t.Errorf("result = %+v", res)
	}
	s.expect(protocol.TypeClose)
}

func TestSendOnceRejected(t *testing.T) {
	f := newFakeBroker(t, password, true)
	done := make(chan SendResult, 1)
	go func() {
		res, _ := SendOnce(testContext(t), Config{URL: f.url(), ID: alice, Password: password}, SendOptions{To: bob, Text: "hi"})
		done <- res
	}()
	s := f.next()
	s.expect(protocol.TypeMessageText)
	s.write(protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{Code: 404, Offending: protocol.TypeMessageText}.Encode()})
	if res := <-done; res.Outcome != OutcomeRejected || res.BrokerError == nil || res.BrokerError.Code != 404 {
		t.Errorf("result = %+v", res)
	}
}

func TestSendOnceNoStatus(t *testing.T) {
	f := newFakeBroker(t, password, true)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan SendResult, 1)
	go func() {
		res, err := SendOnce(ctx, Config{URL: f.url(), ID: alice, Password: password}, SendOptions{To: bob, Text: "hi"})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	f.next().expect(protocol.TypeMessageText)
	cancel() // the wait is over without a status
	if res := <-done; res.Outcome != OutcomeNoStatus {
		t.Errorf("result = %+v", res)
	}
}

func TestSendOnceGroup(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		f := newFakeBroker(t, password, false) // echo by hand, after the error
		done := make(chan SendResult, 1)
		go func() {
			res, _ := SendOnce(testContext(t), Config{URL: f.url(), ID: alice, Password: password}, SendOptions{Group: 91, Text: "all"})
			done <- res
		}()
		s := f.next()
		s.expect(protocol.TypeMessageText)
		if d := s.recv(false); d.Type != protocol.TypeKeepAlive {
			t.Fatalf("got %s, want the barrier", d)
		}
		if refuse {
			s.write(protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{Code: 403, Offending: protocol.TypeMessageText}.Encode()})
		}
		s.write(protocol.Datagram{Type: protocol.TypeKeepAlive})
		res := <-done
		if want := map[bool]Outcome{false: OutcomeDelivered, true: OutcomeRejected}[refuse]; res.Outcome != want {
			t.Errorf("refuse=%v: result = %+v", refuse, res)
		}
	}
}

func TestSendOnceNeedsOneDestination(t *testing.T) {
	if _, err := SendOnce(t.Context(), Config{URL: "ws://127.0.0.1:1/rewind"}, SendOptions{To: 1, Group: 2}); err == nil {
		t.Error("To and Group both set: no error")
	}
}

// syncBuffer is a bytes.Buffer that a test can read while Listen writes to it.
type syncBuffer struct {
	mu    sync.Mutex
	b     strings.Builder
	lines chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Write(p)
	b.lines <- struct{}{}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestListen(t *testing.T) {
	f := newFakeBroker(t, password, true)
	ctx, cancel := context.WithCancel(t.Context())
	out := &syncBuffer{lines: make(chan struct{}, 16)}
	done := make(chan error, 1)
	go func() {
		done <- Listen(ctx, Config{URL: f.url(), ID: alice, Password: password},
			ListenOptions{Groups: []uint32{91}, Attach: &AttachOptions{URL: tokenURL, Token: "t", Legacy: true}}, out)
	}()
	s := f.next()
	if d := s.expect(protocol.TypeTerminalAttach); string(d.Data) != tokenURL+" t" {
		t.Errorf("attach %q", d.Data)
	}
	s.write(protocol.Datagram{Type: protocol.TypeTerminalAttach})
	sub := s.expect(protocol.TypeSubscription)
	s.write(protocol.Datagram{Type: protocol.TypeSubscription, Data: sub.Data})
	s.write(protocol.Datagram{Type: protocol.TypeMessageText, Flags: protocol.FlagBuffering, Number: 7, Data: text(t, bob, alice, protocol.OptionPrivate, "hey")})
	s.expect(protocol.TypeMessageStatus) // AutoStatus is on
	if d := s.expect(protocol.TypeDeliveryAck); string(d.Data) != string(protocol.EncodeU32(7)) {
		t.Errorf("ack = %x", d.Data)
	}
	<-out.lines
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Listen = %v", err)
	}
	want := `MESSAGE_TEXT from=262000201 to=262000101 private text="hey" seq=7 stored` + "\n"
	if out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestListenAttachRefused(t *testing.T) {
	f := newFakeBroker(t, password, true)
	done := make(chan error, 1)
	go func() {
		done <- Listen(t.Context(), Config{URL: f.url(), ID: alice, Password: password},
			ListenOptions{Attach: &AttachOptions{URL: tokenURL, Token: "t", Legacy: true}}, io.Discard)
	}()
	s := f.next()
	s.expect(protocol.TypeTerminalAttach)
	s.write(protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{
		Code: protocol.CodeForbidden, Offending: protocol.TypeTerminalAttach, Reason: "URL not allowed"}.Encode()})
	var be protocol.BrokerError
	if err := <-done; !errors.As(err, &be) || be.Code != protocol.CodeForbidden {
		t.Errorf("Listen = %v, want broker error 403", err)
	}
}

func TestFormatDatagram(t *testing.T) {
	for _, tc := range []struct {
		d    protocol.Datagram
		want string
	}{
		{protocol.Datagram{Type: protocol.TypeMessageText, Number: 3, Data: text(t, 1, 91, protocol.OptionGroup, "a\"b")}, `MESSAGE_TEXT from=1 to=91 group text="a\"b" seq=3`},
		{protocol.Datagram{Type: protocol.TypeMessageStatus, Data: protocol.TextStatus{Source: 2, Destination: 1, Status: protocol.StatusRead}.Encode()}, `MESSAGE_STATUS from=2 to=1 status=read seq=0`},
		{protocol.Datagram{Type: protocol.TypeBrokerError, Data: protocol.BrokerError{Code: 404, Offending: protocol.TypeMessageText, Reason: "no"}.Encode()}, `BROKER_ERROR code=404 offending=MESSAGE_TEXT reason="no" seq=0`},
		{protocol.Datagram{Type: protocol.TypeMessageText, Data: []byte{1}}, `MESSAGE_TEXT undecodable: malformed datagram: text message: 1 bytes, want at least 16 seq=0`},
		{protocol.Datagram{Type: 0x7777, Data: []byte{1, 2}}, `0x7777 len=2 seq=0`},
		{protocol.Datagram{Type: protocol.TypeSubscription, Data: protocol.Subscription{Type: 7, Number: 91}.Encode()}, `SUBSCRIPTION type=7 number=91 seq=0`},
	} {
		if got := FormatDatagram(tc.d); got != tc.want {
			t.Errorf("FormatDatagram(%s) =\n %s\nwant\n %s", tc.d, got, tc.want)
		}
	}
}

func TestAdminPutTerminal(t *testing.T) {
	var got struct {
		method, path, auth, ctype string
		body                      map[string]string
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.auth, got.ctype = r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &got.body)
		if r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	a := Admin{URL: srv.URL + "/", Key: "k"}
	if err := a.PutTerminal(t.Context(), 262000101, "pw", "phone"); err != nil {
		t.Fatal(err)
	}
	if got.method != "PUT" || got.path != "/v1/terminals/262000101" || got.auth != "Bearer k" || got.ctype != "application/json" ||
		got.body["password"] != "pw" || got.body["name"] != "phone" {
		t.Errorf("request = %+v", got)
	}
	a.Key = "wrong"
	err := a.PutTerminal(t.Context(), 1, "pw", "")
	if ae, ok := err.(*AdminError); !ok || ae.Status != 401 || !strings.Contains(ae.Body, "unauthorized") {
		t.Errorf("wrong key: %v", err)
	}
}

func TestReadProcStats(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "status"), []byte("Name:\tbroker\nVmPeak:\t 9 kB\nVmRSS:\t   20480 kB\nThreads: 8\n"), 0o644)
	// A command name with a space and a parenthesis must not shift the fields.
	os.WriteFile(filepath.Join(dir, "stat"), []byte("4242 (bro ker)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0\n"), 0o644)
	ps, err := readProcStats(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ps.RSSBytes != 20480*1024 || ps.CPUSeconds != 3 {
		t.Errorf("got %+v, want 20 MiB and 3 CPU seconds", ps)
	}
	if _, err := ReadProcStats(os.Getpid()); err != nil {
		t.Errorf("own process: %v", err)
	}
	if _, err := readProcStats(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing dir: no error")
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Error("empty histogram")
	}
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	check := func(name string, got, want time.Duration) {
		if d := got - want; d > 0 || -d > want*4/100 {
			t.Errorf("%s = %v, want %v within -4%%", name, got, want)
		}
	}
	check("p50", h.quantile(0.5), 500*time.Millisecond)
	check("p99", h.quantile(0.99), 990*time.Millisecond)
	if h.maxDuration() != time.Second {
		t.Errorf("max = %v", h.maxDuration())
	}
	for us := uint64(0); us < 1<<20; us += 7 {
		if b := histBucket(us); histLow(b) > us || (b+1 < len(h.counts) && histLow(b+1) <= us) {
			t.Fatalf("bucket %d of %dµs: low %d, next %d", b, us, histLow(b), histLow(b+1))
		}
	}
	if b := histBucket(^uint64(0)); b >= len(h.counts) {
		t.Errorf("largest value in bucket %d of %d", b, len(h.counts))
	}
}
