package testclient

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcStats is a process's resident memory and CPU time, read from /proc (Linux only).
type ProcStats struct {
	RSSBytes   int64   `json:"rss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"` // user + system
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It is 100 on every
// Linux architecture Go supports; reading it properly needs sysconf(_SC_CLK_TCK), i.e. cgo.
const clockTicks = 100

// ReadProcStats reads VmRSS from /proc/<pid>/status and utime+stime from /proc/<pid>/stat.
func ReadProcStats(pid int) (ProcStats, error) {
	return readProcStats(fmt.Sprintf("/proc/%d", pid))
}

func readProcStats(dir string) (ProcStats, error) {
	var ps ProcStats
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return ps, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	found := false
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return ps, fmt.Errorf("testclient: %s/status: unexpected VmRSS line %q", dir, sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return ps, fmt.Errorf("testclient: %s/status: %w", dir, err)
		}
		ps.RSSBytes, found = kb*1024, true
	}
	if !found {
		return ps, fmt.Errorf("testclient: %s/status has no VmRSS (a zombie or kernel thread?)", dir)
	}

	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return ps, err
	}
	// The command name (field 2) is in parentheses and may contain spaces and ')': fields after
	// the last ')' start with field 3 (state). utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ps, fmt.Errorf("testclient: %s/stat: no command name", dir)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return ps, fmt.Errorf("testclient: %s/stat: %d fields after the name", dir, len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return ps, fmt.Errorf("testclient: %s/stat: bad utime/stime %q %q", dir, f[11], f[12])
	}
	ps.CPUSeconds = float64(utime+stime) / clockTicks
	return ps, nil
}
