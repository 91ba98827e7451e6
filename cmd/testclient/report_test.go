package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-broker/rewind/testclient"
)

const reportFixtures = "../../testclient/testdata/report/bench"

func TestReportHelp(t *testing.T) {
	code, out, errOut := runWith(t, nil, "--help")
	if code != exitOK || errOut != "" || !strings.Contains(out, "testclient report [flags]") {
		t.Errorf("manual lacks report: exit %d %q", code, out)
	}
	code, out, errOut = runWith(t, nil, "report", "--help")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, w := range []string{"testclient report - ", "--in DIRECTORY", "--go-bench FILE", `--out FILE  (default "docs/benchmarks.md")`,
		"--commit STRING", "--date STRING", testclient.ReportBegin, testclient.ReportEnd, "not measured in this run", "/proc/cpuinfo"} {
		if !strings.Contains(out, w) {
			t.Errorf("report help lacks %q", w)
		}
	}
	if strings.Contains(out, "%!") {
		t.Errorf("formatting error in help:\n%s", out)
	}
}

func TestReportUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "extra"}, `unexpected argument "extra"`},
		{[]string{"report", "--date", "yesterday"}, "--date"},
		{[]string{"report", "--out", ""}, "--out is required"},
	} {
		code, _, errOut := runWith(t, nil, tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	code, _, errOut := runWith(t, nil, "report", "--in", filepath.Join(t.TempDir(), "missing"), "--out", "-")
	if code != exitFailed || errOut == "" {
		t.Errorf("missing --in: exit %d, stderr %q", code, errOut)
	}
}

func TestReportStdout(t *testing.T) {
	code, out, errOut := runWith(t, nil, "report", "--in", reportFixtures, "--go-bench", reportFixtures+"/bench-go.txt",
		"--out", "-", "--commit", "1e71a18-dirty", "--date", "2026-11-24T21:30:00Z", "--go-version", "go1.26.8")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, w := range []string{testclient.ReportBegin, "- **Date:** 2026-11-24 21:30 UTC", "- **Commit:** 1e71a18-dirty", "go1.26.8",
		"| durable publishes/s through the publish API | ≥ 25 000/s, p99 < 10 ms |", "| broker | FCMSendParallel |", testclient.ReportEnd} {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q", w)
		}
	}
}

func TestReportRewritesSection(t *testing.T) {
	out := filepath.Join(t.TempDir(), "benchmarks.md")
	head, tail := "# Benchmarks\n\nhand-written\n\n", "\n## Analysis\n\nhand-written too\n"
	if err := os.WriteFile(out, []byte(head+testclient.ReportBegin+"\nold\n"+testclient.ReportEnd+"\n"+tail), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, errOut := runWith(t, nil, "report", "--in", reportFixtures, "--out", out, "--commit", "abc")
	if code != exitOK || errOut != "" || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, errOut)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if !strings.HasPrefix(doc, head+testclient.ReportBegin+"\n") || !strings.HasSuffix(doc, testclient.ReportEnd+"\n"+tail) ||
		strings.Contains(doc, "\nold\n") || !strings.Contains(doc, "- **Commit:** abc") {
		t.Errorf("section not rewritten in place:\n%s", doc)
	}

	// one marker only: refused, file untouched
	broken := head + testclient.ReportBegin + "\n" + tail
	if err := os.WriteFile(out, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runWith(t, nil, "report", "--in", reportFixtures, "--out", out); code != exitFailed || !strings.Contains(errOut, "markers") {
		t.Errorf("one marker: exit %d, stderr %q", code, errOut)
	}
	if b, _ := os.ReadFile(out); string(b) != broken {
		t.Error("file changed although refused")
	}
}
