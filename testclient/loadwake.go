package testclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rewind-broker/rewind/protocol"
)

// The load run's idle terminals, publishes and wake cycles. Idle terminals need a broker
// started with --dev: their devices are the broker's fake FCM's (POST /dev/devices), their
// token service is the dev one (/dev/token/fcm) and their pushes are read from one
// GET /dev/pushes/stream for all of them.

// idleTerm is a terminal that attached a push channel and went idle.
type idleTerm struct {
	index int
	id    uint32
	token string // its fake FCM device token
}

// ErrNotDevBroker is returned by RunLoad when idle terminals are asked of a broker that does not
// run with --dev.
var ErrNotDevBroker = errors.New("testclient: load: idle terminals and wake cycles need a broker started with --dev (its fake FCM and /dev/ endpoints on the admin listener)")

// brokerStats reads the broker's /proc figures; nil without a broker pid.
func (r *loadRun) brokerStats() (*ProcStats, error) {
	if r.cfg.BrokerPID <= 0 {
		return nil, nil
	}
	st, err := ReadProcStats(r.cfg.BrokerPID)
	if err != nil {
		r.errs.add("broker_procstat")
		return nil, err
	}
	return &st, nil
}

// apiDo makes one admin-listener call and returns the body of a 2xx answer (at most 64 KiB).
func (r *loadRun) apiDo(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(r.api.URL, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+r.api.Key)
	resp, err := r.api.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return nil, &AdminError{Status: resp.StatusCode, Body: strings.TrimSpace(string(out))}
	}
	return out, err
}

// publishText publishes a private text from → to through POST /v1/terminals/{to}/datagrams.
func (r *loadRun) publishText(ctx context.Context, from, to uint32, text string) error {
	data, err := protocol.TextMessage{Source: from, Destination: to, Option: protocol.OptionPrivate, Text: text}.Encode()
	if err != nil {
		return err
	}
	raw, err := protocol.Datagram{Type: protocol.TypeMessageText, Data: data}.Encode()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, loadCallTimeout)
	defer cancel()
	_, err = r.apiDo(cctx, http.MethodPost, fmt.Sprintf("/v1/terminals/%d/datagrams", to), "application/octet-stream", raw)
	return err
}

func apiErrorKind(prefix string, err error) string {
	var ae *AdminError
	switch {
	case errors.As(err, &ae):
		return fmt.Sprintf("%s_http_%d", prefix, ae.Status)
	case errors.Is(err, context.DeadlineExceeded):
		return prefix + "_timeout"
	}
	return prefix + "_other"
}

// publishLoad publishes at cfg.PublishRate until until, to the active connected terminals in
// turn, cfg.PublishWorkers at once. A publish due while every worker is busy and the backlog
// full is not made but counted (publish_backlog).
func (r *loadRun) publishLoad(ctx context.Context, until time.Time) {
	var targets []int
	for i, c := range r.clients[:r.idleFrom] {
		if c != nil {
			targets = append(targets, i)
		}
	}
	if len(targets) == 0 {
		r.errs.add("publish_no_targets")
		return
	}
	r.paced(ctx, r.cfg.PublishRate, until, r.cfg.PublishWorkers, "publish_backlog", func(k int) {
		i := targets[k%len(targets)]
		to := r.cfg.BaseID + uint32(i)
		start := time.Now()
		if err := r.publishText(ctx, r.cfg.BaseID+uint32(i^1), to, markedText(loadPubPrefix, k, start)); err != nil {
			r.pubFailed.Add(1)
			r.errs.add(apiErrorKind("publish", err))
			return
		}
		r.pubLat.record(time.Since(start))
		r.pubOK.Add(1)
	})
}

// goIdle makes the connected terminals from idleFrom on attach a fake device, go idle and drop
// their sockets, DialConcurrency at a time.
func (r *loadRun) goIdle(ctx context.Context) time.Duration {
	start := time.Now()
	sem := make(chan struct{}, r.cfg.DialConcurrency)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := r.idleFrom; i < len(r.clients); i++ {
		c := r.clients[i]
		if c == nil {
			continue
		}
		r.clients[i] = nil // its socket is dropped either way
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			defer c.Abort()
			t, err := r.attachIdle(ctx, c, i)
			if err != nil {
				r.errs.add(err.Error())
				return
			}
			mu.Lock()
			r.idle = append(r.idle, t)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// attachIdle registers a device, attaches it with fresh push keys and sends TERMINAL_IDLE. Its
// error is the kind to count.
func (r *loadRun) attachIdle(ctx context.Context, c *Client, i int) (*idleTerm, error) {
	cctx, cancel := context.WithTimeout(ctx, loadCallTimeout)
	defer cancel()
	body, err := r.apiDo(cctx, http.MethodPost, "/dev/devices?platform=fcm", "", nil)
	var dev devDevice
	if err != nil {
		return nil, errors.New(apiErrorKind("idle_register", err))
	}
	if json.Unmarshal(body, &dev) != nil || dev.Token == "" {
		return nil, errors.New("idle_register_answer")
	}
	keys, err := GenerateKeys()
	if err != nil {
		return nil, errors.New("idle_keys")
	}
	err = c.Attach(cctx, r.devAttach(dev.Token, keys))
	if err != nil {
		return nil, errors.New(errorKind("idle_attach", err))
	}
	if err := c.Idle(cctx); err != nil {
		return nil, errors.New(errorKind("idle", err))
	}
	return &idleTerm{index: i, id: c.ID(), token: dev.Token}, nil
}

// wake runs cfg.WakeCycles wake cycles over the idle terminals, WakeConcurrency at once, each
// terminal in one cycle at a time, in turn.
func (r *loadRun) wake(ctx context.Context) *LoadWakeReport {
	pool := make(chan *idleTerm, len(r.idle))
	for _, t := range r.idle {
		pool <- t
	}
	before, _ := r.brokerStats()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(r.cfg.WakeConcurrency, len(r.idle)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= r.cfg.WakeCycles || ctx.Err() != nil {
					return
				}
				t := <-pool
				r.wakeCycle(ctx, t, k)
				pool <- t
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	r.wakeMu.Lock()
	lost := int64(len(r.wakePending))
	r.wakeMu.Unlock()
	r.errs.addN("wake_lost", lost)
	rep := &LoadWakeReport{
		Cycles: r.cfg.WakeCycles, Published: r.wakePublished.Load(), Pushes: r.wakePushes.Load(),
		Delivered: r.wakeDelivered.Load(), Lost: lost, Seconds: took.Seconds(),
		PushP50ms: ms(r.wakePush.quantile(0.50)), PushP99ms: ms(r.wakePush.quantile(0.99)),
		LatencyP50ms: ms(r.wakeLat.quantile(0.50)), LatencyP99ms: ms(r.wakeLat.quantile(0.99)), LatencyMaxms: ms(r.wakeLat.maxDuration()),
		UnmatchedPushes: r.stream.unmatched.Load(),
	}
	if took > 0 {
		rep.PerSecond = float64(rep.Delivered) / took.Seconds()
	}
	if after, err := r.brokerStats(); err == nil && before != nil && after != nil {
		rep.BrokerCPUSeconds = after.CPUSeconds - before.CPUSeconds
		if rep.Delivered > 0 {
			rep.BrokerCPUPerOp = rep.BrokerCPUSeconds / float64(rep.Delivered) * 1e6
		}
	}
	return rep
}

// wakeAttempts is how many sessions a wake cycle opens, at most, to receive its text.
const wakeAttempts = 3

// wakeCycle: publish a text to idle terminal t, wait for its push, reconnect with
// TERMINAL_WAKEUP, receive the stored text, acknowledge it, go idle and drop the socket.
func (r *loadRun) wakeCycle(ctx context.Context, t *idleTerm, k int) {
	pushed := r.stream.expect(t.token)
	start := time.Now()
	if err := r.publishText(ctx, r.cfg.BaseID, t.id, markedText(loadWakePrefix, k, start)); err != nil {
		r.stream.forget(t.token)
		r.errs.add(apiErrorKind("wake_publish", err))
		return
	}
	r.wakePublished.Add(1)
	r.wakeMu.Lock()
	r.wakePending[k] = true
	r.wakeMu.Unlock()

	timer := time.NewTimer(loadCallTimeout)
	select {
	case at := <-pushed:
		r.wakePushes.Add(1)
		r.wakePush.record(at.Sub(start))
	case <-timer.C:
		r.stream.forget(t.token)
		r.errs.add("wake_push_timeout") // reconnect all the same: the text is stored
	case <-ctx.Done():
		r.stream.forget(t.token)
		timer.Stop()
		return
	}
	timer.Stop()
	for range wakeAttempts {
		err := r.wakeSession(ctx, t, k)
		if err == nil || ctx.Err() != nil {
			return
		}
		r.errs.add(errorKind("wake", err))
	}
}

// wakeSession reconnects t and waits for wake text k; every wake text received is counted as
// delivered (an earlier cycle's left over by a failed session too). It acknowledges what it
// received, goes idle and drops the socket.
func (r *loadRun) wakeSession(ctx context.Context, t *idleTerm, k int) error {
	cctx, cancel := context.WithTimeout(ctx, loadCallTimeout)
	defer cancel()
	c, err := Dial(cctx, Config{
		URL:        r.cfg.URL,
		ID:         t.id,
		Password:   LoadPassword(r.cfg.PasswordSeed, t.id),
		AutoAck:    true,
		Wakeup:     true,
		HTTPClient: r.https[t.index%len(r.https)],
		Logger:     r.cfg.Logger,
	})
	if err != nil {
		return err
	}
	defer c.Abort()
	var high uint32
	for found := false; !found; {
		d, err := c.Recv(cctx)
		if err != nil {
			return err
		}
		now := time.Now()
		switch d.Type {
		case protocol.TypeMessageText:
			m, err := protocol.DecodeTextMessage(d.Data)
			prefix, got, sentAt, ok := parseMarkedText(m.Text)
			if err != nil || !ok || prefix != loadWakePrefix {
				r.errs.add("wake_foreign_text")
				continue
			}
			if d.Flags&protocol.FlagBuffering != 0 {
				high = max(high, d.Number)
			}
			r.wakeMu.Lock()
			first := r.wakePending[got]
			delete(r.wakePending, got)
			r.wakeMu.Unlock()
			if first {
				r.wakeDelivered.Add(1)
			}
			if got == k {
				r.wakeLat.record(now.Sub(sentAt))
				found = true
			}
		case protocol.TypeBrokerError:
			be, err := protocol.DecodeBrokerError(d.Data)
			if err != nil {
				r.errs.add("wake_broker_error_malformed")
			} else {
				r.errs.add(fmt.Sprintf("wake_broker_error_%d", be.Code))
			}
		}
	}
	if high > 0 {
		if err := c.Ack(cctx, high); err != nil {
			return err
		}
	}
	return c.Idle(cctx)
}

// pushStream reads GET /dev/pushes/stream and hands each push to the wake cycle expecting one
// for its device.
type pushStream struct {
	mu        sync.Mutex
	waiting   map[string]chan time.Time // by device token; buffered 1
	unmatched atomic.Int64              // pushes no cycle expected (repeats, late ones)
	done      chan struct{}
}

// openPushStream subscribes; it fails with ErrNotDevBroker when the broker has no /dev/.
func openPushStream(ctx context.Context, api Admin, errs *errorCounts) (*pushStream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(api.URL, "/")+"/dev/pushes/stream", nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil}} // one long-lived connection of its own
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("testclient: load: GET /dev/pushes/stream: %w", err)
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s answered %d to GET /dev/pushes/stream", ErrNotDevBroker, api.URL, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	if resp.StatusCode != http.StatusOK || !sc.Scan() || sc.Text() != `{"Subscribed":true}` {
		resp.Body.Close()
		return nil, fmt.Errorf("testclient: load: GET /dev/pushes/stream answered %d %.200q", resp.StatusCode, sc.Text())
	}
	s := &pushStream{waiting: make(map[string]chan time.Time), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer hc.CloseIdleConnections()
		defer resp.Body.Close()
		for sc.Scan() {
			now := time.Now()
			var line struct {
				Device string
				End    string
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				errs.add("push_stream_malformed")
				continue
			}
			if line.End != "" {
				errs.add("push_stream_end_" + line.End)
				return
			}
			s.mu.Lock()
			ch := s.waiting[line.Device]
			delete(s.waiting, line.Device)
			s.mu.Unlock()
			if ch == nil {
				s.unmatched.Add(1)
				continue
			}
			ch <- now
		}
		if ctx.Err() == nil {
			errs.add("push_stream_closed")
		}
	}()
	return s, nil
}

// expect returns the channel on which the next push for device arrives.
func (s *pushStream) expect(device string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	s.mu.Lock()
	s.waiting[device] = ch
	s.mu.Unlock()
	return ch
}

func (s *pushStream) forget(device string) {
	s.mu.Lock()
	delete(s.waiting, device)
	s.mu.Unlock()
}

// wait waits for the reader to end (after its context is cancelled).
func (s *pushStream) wait() { <-s.done }
