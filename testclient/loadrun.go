package testclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rewind-broker/rewind/protocol"
)

// loadRun is the state of one RunLoad call.
type loadRun struct {
	cfg     LoadConfig
	clients []*Client // index i is terminal BaseID+i; nil when it did not connect
	https   []*http.Client

	phase     atomic.Value // string, for the progress line
	created   atomic.Int64
	connected atomic.Int64
	sent      atomic.Int64
	received  atomic.Int64
	lastRecv  atomic.Int64 // unix ns of the latest text received
	latency   histogram
	errs      errorCounts
	recvWG    sync.WaitGroup

	attachKeys *PushKeyPair // the run's push keys when cfg.Attach

	idleFrom int         // terminals from this index on go idle after setup
	idle     []*idleTerm // those that did
	stream   *pushStream // /dev/pushes/stream, when there are idle terminals
	api      Admin       // cfg.API with an HTTP client sized for the publishers
	apiHTTP  *http.Client

	pubOK, pubFailed, pubRecv atomic.Int64
	pubLat, pubDelivery       histogram

	wakePublished, wakePushes, wakeDelivered atomic.Int64
	wakePush, wakeLat                        histogram
	wakeMu                                   sync.Mutex
	wakePending                              map[int]bool // wake texts published and not yet received
}

// RunLoad runs the load scenario described by cfg and returns its report. It stops by itself
// after setup, cfg.Duration and cfg.Drain, or earlier when ctx ends (the report then covers
// what was done). Every session it opened is closed before it returns.
func RunLoad(ctx context.Context, cfg LoadConfig) (*LoadReport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &loadRun{cfg: cfg, clients: make([]*Client, cfg.Terminals), idleFrom: cfg.Terminals - cfg.idleCount(), wakePending: make(map[int]bool)}
	r.phase.Store("starting")
	r.https = sourceClients(cfg.Sources)
	defer func() {
		for _, hc := range r.https {
			hc.CloseIdleConnections()
		}
	}()
	if cfg.API != nil {
		r.api = *cfg.API
		r.apiHTTP = &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: max(cfg.PublishWorkers, cfg.WakeConcurrency, cfg.DialConcurrency),
			IdleConnTimeout:     30 * time.Second,
		}}
		if r.api.HTTPClient == nil {
			r.api.HTTPClient = r.apiHTTP
		}
		defer r.apiHTTP.CloseIdleConnections()
	}
	if r.idleFrom < cfg.Terminals {
		// Subscribed before anything happens, so that no push is missed; refuses a broker
		// without --dev before any terminal is created.
		sctx, cancel := context.WithCancel(ctx)
		s, err := openPushStream(sctx, r.api, &r.errs)
		if err != nil {
			cancel()
			return nil, err
		}
		r.stream = s
		defer func() { cancel(); s.wait() }()
	}

	if cfg.Attach {
		if r.attachKeys, err = GenerateKeys(); err != nil {
			return nil, err
		}
	}

	stopProgress := r.progress()
	defer stopProgress()
	rep := &LoadReport{Terminals: cfg.Terminals}

	if cfg.Admin != nil {
		r.phase.Store("creating")
		if err := r.create(ctx); err != nil {
			return nil, err
		}
	}
	rep.Created = int(r.created.Load())
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

	var before ProcStats
	if cfg.BrokerPID > 0 {
		if before, err = ReadProcStats(cfg.BrokerPID); err != nil {
			return nil, fmt.Errorf("testclient: load: broker pid %d: %w", cfg.BrokerPID, err)
		}
	}

	r.phase.Store("connecting")
	setup := r.connect(ctx)
	defer r.closeAll()
	rep.Connected = int(r.connected.Load())
	rep.SetupSeconds = setup.Seconds()
	rep.SetupAttach = cfg.Attach
	if setup > 0 {
		rep.SetupRate = float64(rep.Connected) / setup.Seconds()
	}
	if st, err := r.brokerStats(); err == nil && st != nil && rep.Connected > 0 {
		rep.SetupBrokerCPUPerSession = (st.CPUSeconds - before.CPUSeconds) / float64(rep.Connected) * 1e6
	}

	if r.idleFrom < cfg.Terminals {
		r.phase.Store("idling")
		took := r.goIdle(ctx)
		rep.Idle = &LoadIdleReport{Terminals: cfg.Terminals - r.idleFrom, Idle: len(r.idle), SetupSeconds: took.Seconds()}
	}

	r.phase.Store("exchanging")
	exBefore, _ := r.brokerStats()
	start := time.Now()
	var exWG sync.WaitGroup
	if cfg.PublishRate > 0 {
		exWG.Add(1)
		go func() { defer exWG.Done(); r.publishLoad(ctx, start.Add(cfg.Duration)) }()
	}
	r.exchange(ctx)
	exWG.Wait()
	end := time.Now()
	r.phase.Store("draining")
	r.drain(ctx)
	if last := time.Unix(0, r.lastRecv.Load()); last.After(end) {
		end = last // texts/s up to the last arrival, not over the idle end of the drain
	}
	rep.ExchangeSeconds = end.Sub(start).Seconds()
	var exCPUPerOp float64 // broker µs per text or publish during the exchange and drain

	if cfg.BrokerPID > 0 {
		after, err := ReadProcStats(cfg.BrokerPID)
		if err != nil {
			r.errs.add("broker_procstat")
		} else {
			live := rep.Connected - len(r.idle) // idle terminals dropped their sockets
			rep.Broker = NewBrokerUsage(cfg.BrokerPID, before, after, live)
			if ops := r.sent.Load() + r.pubOK.Load(); ops > 0 && exBefore != nil {
				exCPUPerOp = (after.CPUSeconds - exBefore.CPUSeconds) / float64(ops) * 1e6
				rep.ExchangeBrokerCPUPerOp = exCPUPerOp
			}
		}
	}
	if cfg.PublishRate > 0 {
		rep.Publish = &LoadPublishReport{
			Offered: cfg.PublishRate, Published: r.pubOK.Load(), Failed: r.pubFailed.Load(), Delivered: r.pubRecv.Load(),
			LatencyP50ms: ms(r.pubLat.quantile(0.50)), LatencyP99ms: ms(r.pubLat.quantile(0.99)), LatencyMaxms: ms(r.pubLat.maxDuration()),
			DeliveryP50ms: ms(r.pubDelivery.quantile(0.50)), DeliveryP99ms: ms(r.pubDelivery.quantile(0.99)), DeliveryMaxms: ms(r.pubDelivery.maxDuration()),
			BrokerCPUPerOp: exCPUPerOp,
		}
		if d := min(end.Sub(start), cfg.Duration).Seconds(); d > 0 {
			rep.Publish.PerSecond = float64(rep.Publish.Published) / d
		}
	}
	if cfg.WakeCycles > 0 && len(r.idle) > 0 {
		r.phase.Store("waking")
		rep.Wake = r.wake(ctx)
	}

	r.phase.Store("closing")
	r.closeAll()
	rep.TextsSent, rep.TextsReceived = r.sent.Load(), r.received.Load()
	if rep.ExchangeSeconds > 0 {
		rep.Throughput = float64(rep.TextsReceived) / rep.ExchangeSeconds
	}
	rep.LatencyP50ms, rep.LatencyP99ms, rep.LatencyMaxms = ms(r.latency.quantile(0.50)), ms(r.latency.quantile(0.99)), ms(r.latency.maxDuration())
	rep.Errors = r.errs.snapshot()
	return rep, nil
}

// sourceClients returns one HTTP client per source address 127.0.0.1 … 127.0.0.n (n = 1: one
// client that lets the kernel choose). None uses a proxy: a load run talks to loopback directly.
func sourceClients(n int) []*http.Client {
	out := make([]*http.Client, n)
	for i := range out {
		d := &net.Dialer{Timeout: HandshakeTimeout, KeepAlive: -1}
		network := ""
		if n > 1 {
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i+1))}
			network = "tcp4" // the source is IPv4; "localhost" must not resolve to ::1
		}
		tr := &http.Transport{
			DialContext: func(ctx context.Context, nw, addr string) (net.Conn, error) {
				if network != "" {
					nw = network
				}
				return d.DialContext(ctx, nw, addr)
			},
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		}
		out[i] = &http.Client{Transport: tr}
	}
	return out
}

// progress prints one line a second until the returned function is called.
func (r *loadRun) progress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				fmt.Fprintf(r.cfg.Progress, "load %4.0fs %-10s created %d connected %d/%d sent %d received %d published %d woken %d errors %d\n",
					now.Sub(start).Seconds(), r.phase.Load(), r.created.Load(), r.connected.Load(), r.cfg.Terminals,
					r.sent.Load(), r.received.Load(), r.pubOK.Load(), r.wakeDelivered.Load(), r.errs.total())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// create registers every terminal through the admin API with a bounded worker pool. It fails
// only when not a single terminal could be created (wrong key, wrong URL): then nothing else
// would work either.
func (r *loadRun) create(ctx context.Context) error {
	ids := make(chan int)
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	admin := *r.cfg.Admin
	if admin.HTTPClient == nil {
		admin.HTTPClient = r.https[0]
	}
	for range r.cfg.CreateWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				id := r.cfg.BaseID + uint32(i)
				cctx, cancel := context.WithTimeout(ctx, loadCallTimeout)
				err := admin.PutTerminal(cctx, id, LoadPassword(r.cfg.PasswordSeed, id), fmt.Sprintf("load %d", i))
				cancel()
				if err != nil {
					var ae *AdminError
					if errors.As(err, &ae) {
						r.errs.add(fmt.Sprintf("create_http_%d", ae.Status))
					} else {
						r.errs.add("create_other")
					}
					once.Do(func() { firstErr = err })
					continue
				}
				r.created.Add(1)
			}
		}()
	}
	for i := range r.cfg.Terminals {
		select {
		case ids <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(ids)
	wg.Wait()
	if r.created.Load() == 0 {
		if firstErr == nil {
			firstErr = ctx.Err()
		}
		return fmt.Errorf("testclient: load: no terminal could be created: %w", firstErr)
	}
	return nil
}

// pace calls fn(k) for k = 0, 1, … at rate per second from now until n calls were made (n < 0:
// no limit), until stops, or ctx ends. It catches up after a slow fn instead of drifting, and
// uses one timer.
func pace(ctx context.Context, rate float64, n int, until time.Time, fn func(k int) bool) {
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for k := 0; n < 0 || k < n; {
		select {
		case <-ctx.Done():
			return
		case now := <-timer.C:
			if !until.IsZero() && !now.Before(until) {
				return
			}
			due := int(now.Sub(start).Seconds()*rate) + 1
			for ; k < due && (n < 0 || k < n); k++ {
				if !fn(k) {
					return
				}
			}
			next := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
			timer.Reset(max(time.Until(next), 0))
		}
	}
}

// connect dials every terminal at cfg.Ramp sessions/s, at most cfg.DialConcurrency at once, and
// returns how long it took from the first dial to the last answer.
func (r *loadRun) connect(ctx context.Context) time.Duration {
	sem := make(chan struct{}, r.cfg.DialConcurrency)
	var wg sync.WaitGroup
	start := time.Now()
	rate := r.cfg.Ramp
	if rate == 0 {
		rate = MaxLoadRamp
	}
	pace(ctx, rate, r.cfg.Terminals, time.Time{}, func(i int) bool {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			id := r.cfg.BaseID + uint32(i)
			c, err := Dial(ctx, Config{
				URL:        r.cfg.URL,
				ID:         id,
				Password:   LoadPassword(r.cfg.PasswordSeed, id),
				AutoAck:    true, // private texts are stored deliveries: unacknowledged, they pile up
				HTTPClient: r.https[i%len(r.https)],
				Logger:     r.cfg.Logger,
			})
			if err != nil {
				r.errs.add(errorKind("dial", err))
				return
			}
			if r.cfg.Attach {
				if err := r.attach(ctx, c); err != nil {
					r.errs.add(errorKind("attach", err))
					c.Abort()
					return
				}
			}
			r.clients[i] = c
			r.connected.Add(1)
			if i < r.idleFrom { // an idle-to-be terminal's datagrams are read by goIdle
				r.recvWG.Add(1)
				go r.receive(c)
			}
		}()
		return true
	})
	wg.Wait()
	return time.Since(start)
}

// receive consumes one terminal's datagrams until its session ends, timing load texts.
func (r *loadRun) receive(c *Client) {
	defer r.recvWG.Done()
	for {
		d, err := c.Recv(context.Background()) // ends with the session: closeAll closes it
		if err != nil {
			if !errors.Is(err, ErrClosed) {
				r.errs.add(errorKind("session", err))
			}
			return
		}
		now := time.Now()
		switch d.Type {
		case protocol.TypeMessageText:
			m, err := protocol.DecodeTextMessage(d.Data)
			prefix, _, sentAt, ok := parseMarkedText(m.Text)
			switch {
			case err != nil || !ok:
				r.errs.add("recv_foreign_text")
			case prefix == loadPubPrefix:
				r.pubDelivery.record(now.Sub(sentAt))
				r.pubRecv.Add(1)
			case prefix == loadTextPrefix:
				r.latency.record(now.Sub(sentAt))
				r.received.Add(1)
				r.lastRecv.Store(now.UnixNano())
			default:
				r.errs.add("recv_foreign_text")
			}
		case protocol.TypeBrokerError:
			be, err := protocol.DecodeBrokerError(d.Data)
			if err != nil {
				r.errs.add("recv_broker_error_malformed")
			} else {
				r.errs.add(fmt.Sprintf("broker_error_%d", be.Code))
			}
		case protocol.TypeMessageStatus:
			// Not asked for (no AutoStatus here), but a terminal may be configured to send them.
		default:
			r.errs.add("recv_unexpected_" + d.Type.String())
		}
	}
}

func loadText(k int, at time.Time) string { return markedText(loadTextPrefix, k, at) }

// markedText is a load run's text: prefix, its number k and its send time.
func markedText(prefix string, k int, at time.Time) string {
	return prefix + strconv.Itoa(k) + " " + strconv.FormatInt(at.UnixNano(), 10)
}

func parseLoadText(s string) (time.Time, bool) {
	prefix, _, at, ok := parseMarkedText(s)
	return at, ok && prefix == loadTextPrefix
}

// parseMarkedText parses markedText's result.
func parseMarkedText(s string) (prefix string, k int, at time.Time, ok bool) {
	for _, p := range []string{loadTextPrefix, loadPubPrefix, loadWakePrefix} {
		rest, found := strings.CutPrefix(s, p)
		if !found {
			continue
		}
		ks, ts, found := strings.Cut(rest, " ")
		if !found {
			return "", 0, time.Time{}, false
		}
		k, err1 := strconv.Atoi(ks)
		ns, err2 := strconv.ParseInt(ts, 10, 64)
		if err1 != nil || err2 != nil {
			return "", 0, time.Time{}, false
		}
		return p, k, time.Unix(0, ns), true
	}
	return "", 0, time.Time{}, false
}

// exchange sends texts from the connected pairs at cfg.Rate for cfg.Duration through a pool of
// cfg.SendWorkers writers. A text due while every writer is busy and the backlog full is not
// sent but counted (send_backlog): the rate asked for is more than this machine can write.
func (r *loadRun) exchange(ctx context.Context) {
	var senders []int // i such that i and i^1 both connected
	for i, c := range r.clients {
		if c != nil && i < r.idleFrom && i^1 < r.idleFrom && r.clients[i^1] != nil {
			senders = append(senders, i)
		}
	}
	if len(senders) == 0 || r.cfg.Rate == 0 || r.cfg.Duration == 0 {
		if len(senders) == 0 {
			r.errs.add("exchange_no_pairs")
		}
		return
	}
	r.paced(ctx, r.cfg.Rate, time.Now().Add(r.cfg.Duration), r.cfg.SendWorkers, "send_backlog", func(k int) {
		i := senders[k%len(senders)]
		from, to := r.clients[i], r.cfg.BaseID+uint32(i^1)
		sctx, cancel := context.WithTimeout(ctx, loadCallTimeout)
		err := from.SendText(sctx, to, loadText(k, time.Now()))
		cancel()
		if err != nil {
			r.errs.add("send")
			return
		}
		r.sent.Add(1)
	})
}

// paced runs job(k) for k = 0, 1, … at rate per second until until, on workers goroutines. A
// job due while every worker is busy and the backlog (4 per worker) is full is not run but
// counted under backlogKind: the rate asked for is more than this machine can do.
func (r *loadRun) paced(ctx context.Context, rate float64, until time.Time, workers int, backlogKind string, job func(k int)) {
	jobs := make(chan int, workers*4)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				job(k)
			}
		}()
	}
	pace(ctx, rate, -1, until, func(k int) bool {
		select {
		case jobs <- k:
		default:
			r.errs.add(backlogKind)
		}
		return true
	})
	close(jobs)
	wg.Wait()
}

// drain waits up to cfg.Drain for every sent text and published datagram to arrive.
func (r *loadRun) drain(ctx context.Context) {
	deadline := time.NewTimer(r.cfg.Drain)
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for r.received.Load() < r.sent.Load() || r.pubRecv.Load() < r.pubOK.Load() {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			r.errs.addN("texts_missing_after_drain", r.sent.Load()-r.received.Load())
			r.errs.addN("publishes_missing_after_drain", r.pubOK.Load()-r.pubRecv.Load())
			return
		case <-poll.C:
		}
	}
}

// closeAll closes every session (bounded concurrency) and waits for the receivers. Idempotent.
func (r *loadRun) closeAll() {
	sem := make(chan struct{}, r.cfg.DialConcurrency)
	var wg sync.WaitGroup
	for _, c := range r.clients {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.Close()
		}()
	}
	wg.Wait()
	r.recvWG.Wait()
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// attach attaches c's push channel as part of its setup (LoadConfig.Attach).
func (r *loadRun) attach(ctx context.Context, c *Client) error {
	ctx, cancel := context.WithTimeout(ctx, loadCallTimeout)
	defer cancel()
	return c.Attach(ctx, r.devAttach("load-device-"+strconv.FormatUint(uint64(c.ID()), 10), r.attachKeys))
}

// devAttach is an attach to the dev broker's token service for the FCM device token.
func (r *loadRun) devAttach(token string, keys *PushKeyPair) AttachOptions {
	return AttachOptions{
		URL:      strings.TrimRight(r.api.URL, "/") + "/dev/token/fcm",
		Token:    token,
		Platform: PlatformFCM,
		Keys:     keys,
		Name:     "load",
	}
}
