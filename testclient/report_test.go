package testclient

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var reportDate = time.Date(2026, 11, 24, 21, 30, 0, 0, time.FixedZone("CET", 3600))

var reportMachine = Machine{CPUs: 2, CPUModel: "Intel(R) Xeon(R) Processor", MemBytes: 24684084 * 1024, GoVersion: "go1.26.8", OpenFiles: 20000}

// goalTable returns the reached-vs-goal rows of a generated section by figure (its first
// words), each as its cells: figure, goal, reached, status, source.
func goalTable(t *testing.T, section string) map[string][]string {
	t.Helper()
	_, rest, ok := strings.Cut(section, "| figure | goal | reached | status | source |\n|---|---|---|---|---|\n")
	if !ok {
		t.Fatalf("no goal table in:\n%s", section)
	}
	rows := map[string][]string{}
	for line := range strings.SplitSeq(rest, "\n") {
		if !strings.HasPrefix(line, "| ") {
			break
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 5 {
			t.Fatalf("row with %d cells: %q", len(cells), line)
		}
		rows[strings.Join(strings.Fields(cells[0])[:2], " ")] = cells
	}
	if len(rows) != 8 {
		t.Fatalf("%d goal rows, want 8:\n%s", len(rows), section)
	}
	return rows
}

func buildReport(t *testing.T, cfg ReportConfig) string {
	t.Helper()
	if cfg.Date.IsZero() {
		cfg.Date = reportDate
	}
	if cfg.Machine == (Machine{}) {
		cfg.Machine = reportMachine
	}
	s, err := BuildReport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, ReportBegin+"\n") || !strings.HasSuffix(s, "\n"+ReportEnd+"\n") {
		t.Errorf("section not delimited by the markers:\n%s", s)
	}
	return s
}

type wantRow struct {
	status  string
	reached []string // substrings of the reached cell
	source  string
}

func checkRows(t *testing.T, rows map[string][]string, want map[string]wantRow) {
	t.Helper()
	for fig, w := range want {
		r, ok := rows[fig]
		if !ok {
			t.Errorf("no row %q", fig)
			continue
		}
		if r[3] != w.status {
			t.Errorf("%s: status %q, want %q (reached %q)", fig, r[3], w.status, r[2])
		}
		for _, s := range w.reached {
			if !strings.Contains(r[2], s) {
				t.Errorf("%s: reached %q lacks %q", fig, r[2], s)
			}
		}
		if w.source != "" && r[4] != w.source {
			t.Errorf("%s: source %q, want %q", fig, r[4], w.source)
		}
	}
}

func TestReportBench(t *testing.T) {
	s := buildReport(t, ReportConfig{InDir: "testdata/report/bench", GoBench: "testdata/report/bench/bench-go.txt", Commit: "1e71a18-dirty"})
	for _, w := range []string{
		"- **Date:** 2026-11-24 20:30 UTC\n",
		"- **Commit:** 1e71a18-dirty\n",
		"- **Machine:** 2 × Intel(R) Xeon(R) Processor, 23.5 GiB RAM, go1.26.8, open-files limit 20 000\n",
		// commands: recorded verbatim, or said to be missing
		"`wake`:\n\n```sh\n# commit 1e71a18, 2026-11-24T21:00:00Z\nbin/broker --data $(mktemp -d) --dev\nbin/testclient load --terminals 2000 --idle-share 0.5 --wake-cycles 500 --json\n```\n",
		"`texts`:\n\n```sh\n# command not recorded (no load-texts.cmd)\n```\n",
		"```sh\n# commit 1e71a18, 2026-11-24T21:00:00Z\ngo test -run '^$' -bench . -benchmem -count 1 ./protocol ./registry ./broker\n```\n",
		// scenario table
		"| sessions-8000 | 8 000 of 8 000 | 6 000 | 100 | 11.3 |  |  |  | 0 | 280.0 MB | 1.50 |\n",
		"| publish | 2 000 of 2 000 | 5 500 | 100 | 8.00 | 26 000 | 8.50 |  | 0 |  |  |\n",
		"| wake | 2 000 of 2 000 | 5 564 | 100 | 1.00 |  |  | 20.3 (0) | 0 |  |  |\n",
		// Go benchmarks with custom metrics
		"| protocol | DecodeHeader | 2.07 | 0 | 0 | 68 583 MB/s |\n",
		"| registry | OutboxAppendParallel | 15 421 | 9 183 | 76 | 59.29 appends/commit, 64 844 appends/s |\n",
		"| broker | WakeCycle | 2 419 042 | 251 584 | 3 507 | 1.725 p50-ms, 4.478 p99-ms |\n",
		"| broker | FCMSendParallel | 107 842 | 10 247 | 98 | 64.92 fake-µs-cpu/push, 2.855 p50-ms, 9.67 p99-ms, 9 274 pushes/s, 51.88 µs-cpu/push |\n",
	} {
		if !strings.Contains(s, w) {
			t.Errorf("report lacks %q:\n%s", w, s)
		}
	}
	// sessions-2000 comes before sessions-8000 (numeric order)
	if strings.Index(s, "| sessions-2000 |") > strings.Index(s, "| sessions-8000 |") {
		t.Error("sessions-N not in numeric order")
	}
	checkRows(t, goalTable(t, s), map[string]wantRow{
		// no memory-slope file: the slope between the smallest and largest sessions-N runs,
		// (280 MB − 100 MB) / 6 000, said not to be the goal's sizes
		"broker RSS": {StatusNotMet, []string{"**30.0 KB**", "(280.0 MB − 100.0 MB) / 6 000 sessions, 2 000 → 8 000", "not the goal's sizes"},
			"load-sessions-2000.json (run not recorded), load-sessions-8000.json (run not recorded)"},
		// the setup run attaches: judged on it, the sessions-N runs beside it
		"session setups/s": {StatusNotMet, []string{"**4 200/s** (8 000 of 8 000 terminals, connect + challenge + auth + attach",
			"125 µs broker CPU per session set up, i.e. ≈ 8 000 setups/s per broker core", "without attach: sessions-2000: 5 000/s, sessions-8000: 6 000/s"},
			"load-setup.json (run not recorded)"},
		// figures hold, but at 2 000 sessions instead of 10 000
		"live private":        {StatusNotMeasured, []string{"**60 000/s, p99 3.10 ms**", "2 000 sessions", "48 µs broker CPU per text"}, "load-texts.json (run not recorded)"},
		"durable publishes/s": {StatusMet, []string{"**26 000/s, POST p99 8.50 ms**", "0 failed", "delivery p99 9.50 ms", "38 µs broker CPU"}, "load-publish.json (run not recorded)"},
		"durable outbox":      {StatusMet, []string{"**64 844/s** (OutboxAppendParallel, 59.3 appends per commit)"}, "go test -bench OutboxAppendParallel (1e71a18, 2026-11-24T21:00:00Z)"},
		// judged on the whole wake path, the sender's figures beside it
		"wake pushes/s": {StatusNotMet, []string{"**4 026/s, 179.3 µs broker CPU/push, p99 20.5 ms** (WakePushParallel; whole wake path",
			"p50 7.23 ms, fake FCM 93.0 µs CPU/push", "the FCM sender alone: 9 274/s, 51.9 µs broker CPU/push, p99 9.67 ms (FCMSendParallel; p50 2.85 ms"},
			"go test -bench WakePushParallel, FCMSendParallel (1e71a18, 2026-11-24T21:00:00Z)"},
		"idle →": {StatusNotMeasured, []string{"**p99 20.3 ms, lost 0**", "1 000 idle of 2 000 terminals", "not the goal's 10 000 idle terminals"}, "load-wake.json (1e71a18, 2026-11-24T21:00:00Z)"},
		"the 19": {StatusNotMeasured, []string{"no sessions-19000 run"}, "—"},
	})
}

func TestReportFull(t *testing.T) {
	// a BENCH_FULL run alone: no Go benchmarks (missing file), no texts or publish runs
	s := buildReport(t, ReportConfig{InDir: "testdata/report/full", GoBench: "testdata/report/full/no-such-file.txt"})
	if !strings.Contains(s, "- **Commit:** unknown\n") {
		t.Error("no commit given: want unknown")
	}
	if strings.Contains(s, "### Go benchmarks") || strings.Contains(s, "no-such-file") {
		t.Error("Go benchmarks section without a benchmark file")
	}
	if !strings.Contains(s, "| memory-slope | 5 000 → 19 000 | | | | | | | | 100.0 MB → 254.0 MB (11 000 bytes/session) | |\n") {
		t.Errorf("memory slope scenario row missing:\n%s", s)
	}
	checkRows(t, goalTable(t, s), map[string]wantRow{
		// judged on the runtime's defaults; the tuned slope beside it
		"broker RSS":          {StatusMet, []string{"**11.0 KB**", "5 000 → 19 000", "; with GOGC=50: **9.0 KB** (90.0 MB → 216.0 MB, memory-slope-gogc50)"}, "load-memory-slope.json (run not recorded)"},
		"session setups/s":    {StatusNotMeasured, []string{"**8 100/s** (sessions-19000)"}, ""}, // attach not measured
		"live private":        {StatusNotMeasured, []string{"no texts run"}, "—"},
		"durable publishes/s": {StatusNotMeasured, []string{"no publish run"}, "—"},
		"durable outbox":      {StatusNotMeasured, []string{"no appends/s benchmark"}, "—"},
		"wake pushes/s":       {StatusNotMeasured, []string{"no pushes/s benchmark"}, "—"},
		"idle →":              {StatusMet, []string{"**p99 47.1 ms, lost 0**", "10 000 idle of 12 000"}, "load-wake-10000.json (77a8179, 2026-11-24T20:00:00Z)"},
		"the 19":              {StatusMet, []string{"**19 000 of 19 000 connected, 0 errors**", "over 2 load processes"}, "load-sessions-19000.json (run not recorded)"},
	})
}

func TestReportEmpty(t *testing.T) {
	s := buildReport(t, ReportConfig{InDir: t.TempDir()})
	for fig, r := range goalTable(t, s) {
		if r[3] != StatusNotMeasured {
			t.Errorf("%s: %q with no data", fig, r[3])
		}
	}
	if strings.Contains(s, "### Load scenarios") {
		t.Error("scenario table with no scenarios")
	}
	if _, err := BuildReport(ReportConfig{InDir: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("missing input directory accepted")
	}
}

func TestReportErrorsAndBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("load-texts.json", `{"terminals": 10000, "connected": 10000, "texts_sent": 100, "texts_received": 90,
		"texts_received_per_second": 55000, "latency_p99_ms": 4, "errors": {"texts_missing_after_drain": 10}}`)
	write("load-wake.json", "") // a run that wrote no report
	s := buildReport(t, ReportConfig{InDir: dir})
	rows := goalTable(t, s)
	checkRows(t, rows, map[string]wantRow{
		// at the goal's size and fast enough, but texts went missing
		"live private": {StatusNotMet, []string{"errors: texts_missing_after_drain 10"}, ""},
		"idle →":       {StatusNotMeasured, nil, ""},
	})
	if !strings.Contains(s, "| wake | 0 of 0 | 0 |  |  |  |  |  | 1 |  |  |\n") {
		t.Errorf("empty report file not shown as an error:\n%s", s)
	}
	write("load-publish.json", "{not json")
	if _, err := BuildReport(ReportConfig{InDir: dir}); err == nil || !strings.Contains(err.Error(), "load-publish.json") {
		t.Errorf("bad JSON: err %v", err)
	}
}

func TestReplaceSection(t *testing.T) {
	section := ReportBegin + "\nnew\n" + ReportEnd + "\n"
	head := "# Benchmarks\n\nhand-written | with a table\n\n"
	tail := "\n## Analysis\n\nkept as it is.\n"
	doc := head + ReportBegin + "\nold\nlines\n" + ReportEnd + "\n" + tail
	got, err := ReplaceSection(doc, section)
	if err != nil {
		t.Fatal(err)
	}
	if want := head + section + tail; got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	again, err := ReplaceSection(got, section)
	if err != nil || again != got {
		t.Errorf("not idempotent: %v\n%q", err, again)
	}

	// no markers: appended once, then replaced in place
	got, err = ReplaceSection("# Benchmarks\nintro", section)
	if err != nil || got != "# Benchmarks\nintro\n\n"+section {
		t.Errorf("append: %v %q", err, got)
	}
	if got, err = ReplaceSection("", section); err != nil || got != section {
		t.Errorf("empty doc: %v %q", err, got)
	}

	for name, bad := range map[string]string{
		"begin only":   head + ReportBegin + "\n" + tail,
		"end only":     head + ReportEnd + "\n" + tail,
		"out of order": ReportEnd + "\n" + ReportBegin + "\n",
		"two sections": section + section,
	} {
		if _, err := ReplaceSection(bad, section); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWriteReport(t *testing.T) {
	out := filepath.Join(t.TempDir(), "benchmarks.md")
	head, tail := "# Benchmarks\n\nIntro.\n\n", "\n## What limits each figure\n\nAnalysis.\n"
	if err := os.WriteFile(out, []byte(head+ReportBegin+"\nstale\n"+ReportEnd+"\n"+tail), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := ReportConfig{InDir: "testdata/report/bench", Commit: "abc1234", Date: reportDate, Machine: reportMachine}
	if err := WriteReport(cfg, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if !strings.HasPrefix(doc, head+ReportBegin) || !strings.HasSuffix(doc, ReportEnd+"\n"+tail) || strings.Contains(doc, "stale") {
		t.Errorf("hand-written parts not kept or section not replaced:\n%s", doc)
	}
	if !strings.Contains(doc, "- **Commit:** abc1234") {
		t.Error("commit missing")
	}
	// a new file gets the section alone
	out2 := filepath.Join(t.TempDir(), "new.md")
	if err := WriteReport(cfg, out2); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out2); !strings.HasPrefix(string(b), ReportBegin) {
		t.Errorf("new file: %q", b)
	}
}

func TestParseGoBench(t *testing.T) {
	f, err := os.Open("testdata/report/bench/bench-go.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bs, err := parseGoBench(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 8 {
		t.Fatalf("%d benchmarks, want 8: %+v", len(bs), bs)
	}
	b := bs[2]
	if b.Pkg != "github.com/rewind-broker/rewind/registry" || b.Name != "OutboxAppendParallel" || b.Iters != 94693 {
		t.Errorf("got %+v", b)
	}
	for unit, v := range map[string]float64{"ns/op": 15421, "appends/commit": 59.29, "appends/s": 64844, "B/op": 9183, "allocs/op": 76} {
		if b.Metrics[unit] != v {
			t.Errorf("%s = %v, want %v", unit, b.Metrics[unit], v)
		}
	}
	if p := bs[6]; p.Name != "WakePushParallel" || p.Metrics["µs-cpu/push"] != 179.3 || p.Metrics["fake-µs-cpu/push"] != 93.01 {
		t.Errorf("WakePushParallel: %+v", p)
	}
	if w := bs[7]; w.Name != "WakeCycle" || w.Metrics["p50-ms"] != 1.725 || w.Metrics["p99-ms"] != 4.478 {
		t.Errorf("WakeCycle: %+v", w)
	}
}

// TestPushFigures: a goal criterion counts as measured only when its metric is there; a
// benchmark with the fake FCM in its own process (no µs-cpu/push) measures throughput only.
func TestPushFigures(t *testing.T) {
	for _, tc := range []struct {
		metrics       map[string]float64
		figures, note string
		status        string
	}{
		{map[string]float64{"pushes/s": 11351}, "11 351/s", "sender and fake FCM in one process: broker CPU/push and broker-added p99 not measured", StatusNotMet},
		{map[string]float64{"pushes/s": 25000}, "25 000/s", "sender and fake FCM in one process: broker CPU/push and broker-added p99 not measured", StatusNotMeasured},
		{map[string]float64{"pushes/s": 25000, "µs-cpu/push": 40}, "25 000/s, 40.0 µs broker CPU/push", "p99 not measured", StatusNotMeasured},
		{map[string]float64{"pushes/s": 25000, "µs-cpu/push": 40, "p99-ms": 1.5, "p50-ms": 0.4}, "25 000/s, 40.0 µs broker CPU/push, p99 1.50 ms", "p50 0.40 ms", StatusMet},
		{map[string]float64{"pushes/s": 25000, "µs-cpu/push": 40, "p99-ms": 2.5}, "25 000/s, 40.0 µs broker CPU/push, p99 2.50 ms", "", StatusNotMet},
		{map[string]float64{"pushes/s": 25000, "µs-cpu/push": 60, "p99-ms": 1.5}, "25 000/s, 60.0 µs broker CPU/push, p99 1.50 ms", "", StatusNotMet},
	} {
		figures, note, cs := pushFigures(goBench{Name: "FCMSendParallel", Metrics: tc.metrics})
		if figures != tc.figures || note != tc.note || status(true, cs[:]...) != tc.status {
			t.Errorf("%v: %q, %q, %s; want %q, %q, %s", tc.metrics, figures, note, status(true, cs[:]...), tc.figures, tc.note, tc.status)
		}
	}
}

func TestParseMachine(t *testing.T) {
	cpus, model := parseCPUInfo(strings.NewReader("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n"))
	if cpus != 2 || model != "Intel(R) Xeon(R) Processor" {
		t.Errorf("cpuinfo: %d %q", cpus, model)
	}
	if n := parseMemInfo(strings.NewReader("MemTotal:       24684084 kB\nMemFree:  1 kB\n")); n != 24684084*1024 {
		t.Errorf("meminfo: %d", n)
	}
	if m := ReadMachine(); m.CPUs < 1 || m.GoVersion == "" {
		t.Errorf("ReadMachine: %+v", m)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{fmtInt(0), "0"}, {fmtInt(999), "999"}, {fmtInt(1000), "1 000"}, {fmtInt(1234567), "1 234 567"}, {fmtInt(-12000), "−12 000"},
		{fmtMs(3342.3), "3 342"}, {fmtMs(17.94), "17.9"}, {fmtMs(1.056), "1.06"},
		{fmtMetric(2.07), "2.07"}, {fmtMetric(294330), "294 330"},
		{cell("a|b\nc"), `a\|b c`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
