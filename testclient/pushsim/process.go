package pushsim

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"time"
)

// FCM in a child process.
//
// A benchmark that wants the CPU time of its sender alone (the process's own rusage divided by
// the pushes sent) cannot run the fake FCM in the same process: the fake's TLS, HTTP/2 and JSON
// work would be counted as the sender's. StartFCMProcess runs the fake in a child process
// instead — by default a copy of the running program, typically the test binary, which serves
// the fake when it finds fcmProcessEnv in its environment:
//
//	func TestMain(m *testing.M) { pushsim.ServeFCMProcessIfAsked(); os.Exit(m.Run()) }
//
// (an init function in a _test.go file works as well). The child writes one JSON line (its
// fcmProcessHello) on stdout and serves until its stdin is closed, which also happens when the
// parent dies, so a child is never left behind.

// fcmProcessEnv names the environment variable that makes ServeFCMProcessIfAsked serve; its
// value is the project to issue a bearer and register a device for.
const fcmProcessEnv = "PUSHSIM_FCM_PROCESS_PROJECT"

// fcmProcessDevicesEnv names the number of devices the child registers (1 when absent).
const fcmProcessDevicesEnv = "PUSHSIM_FCM_PROCESS_DEVICES"

// FCMProcessCPUProfileEnv names an environment variable that, when set for the parent, makes the
// child write a CPU profile of its whole life to the file it names (to see what the fake costs).
const FCMProcessCPUProfileEnv = "PUSHSIM_FCM_PROCESS_CPUPROFILE"

// fcmProcessStartTimeout bounds the child's start-up (exec plus the hello line).
const fcmProcessStartTimeout = 30 * time.Second

// fcmProcessHello is the child's first line on stdout.
type fcmProcessHello struct {
	URL     string   `json:"url"`
	CertDER []byte   `json:"cert_der"`
	Bearer  string   `json:"bearer"`
	Devices []string `json:"devices"`
}

// FCMProcess is a fake FCM served by a child process, with one project, one valid bearer and
// registered devices. The child does not keep the pushes it accepts (see KeepPushes), so a
// long benchmark does not grow it; it is answered exactly as an in-process FCM would answer.
type FCMProcess struct {
	// URL is the server's base URL, "https://127.0.0.1:port".
	URL string
	// Project, Bearer and Device are the project, an access token issued for it and a device
	// token registered to it; Devices are all the registered device tokens (Device is the first).
	Project, Bearer, Device string
	Devices                 []string

	cert  *x509.Certificate
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error // the child's exit, once
}

// StartFCMProcess starts exe (the running program when empty) as a fake FCM serving project with
// devices (at least 1) registered devices and waits for it to be ready. The child inherits the
// environment and stderr. Close it when done.
func StartFCMProcess(ctx context.Context, exe, project string, devices int) (*FCMProcess, error) {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("pushsim: FCM process: %w", err)
		}
	}
	cmd := exec.Command(exe, "-test.run=^$") // a test binary then runs nothing if it does not serve
	cmd.Env = append(os.Environ(), fcmProcessEnv+"="+project, fcmProcessDevicesEnv+"="+strconv.Itoa(max(devices, 1)))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("pushsim: FCM process: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("pushsim: FCM process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pushsim: FCM process: %w", err)
	}
	p := &FCMProcess{Project: project, cmd: cmd, stdin: stdin, done: make(chan error, 1)}

	hello := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadBytes('\n')
		if err == nil {
			var h fcmProcessHello
			if err = json.Unmarshal(line, &h); err == nil {
				p.URL, p.Bearer, p.Devices = h.URL, h.Bearer, h.Devices
				p.cert, err = x509.ParseCertificate(h.CertDER)
				if err == nil && len(h.Devices) == 0 {
					err = errors.New("no device")
				} else if err == nil {
					p.Device = h.Devices[0]
				}
			}
		} else {
			err = fmt.Errorf("no hello line (%w): %q", err, line)
		}
		hello <- err
		_, _ = io.Copy(io.Discard, stdout) // until the child exits
		p.done <- cmd.Wait()
	}()
	timer := time.NewTimer(fcmProcessStartTimeout)
	defer timer.Stop()
	select {
	case err = <-hello:
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = errors.New("not ready in time")
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = stdin.Close()
		<-p.done // the reader ends once the killed child's stdout closes
		return nil, fmt.Errorf("pushsim: FCM process %s: %w", exe, err)
	}
	return p, nil
}

// Pid is the child's process id, e.g. to read its CPU time from /proc.
func (p *FCMProcess) Pid() int { return p.cmd.Process.Pid }

// CertPool holds the child's self-signed certificate.
func (p *FCMProcess) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.cert)
	return pool
}

// Close asks the child to stop (by closing its stdin), kills it if it has not exited within
// five seconds, and waits for it. It returns the child's exit error, if any.
func (p *FCMProcess) Close() error {
	_ = p.stdin.Close()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case err := <-p.done:
		return err
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("pushsim: FCM process did not stop; killed")
	}
}

// ServeFCMProcessIfAsked returns at once unless the program was started by StartFCMProcess. If
// it was, it serves a fake FCM on loopback, writes the hello line on stdout, serves until stdin
// is closed and exits the program.
func ServeFCMProcessIfAsked() {
	project, ok := os.LookupEnv(fcmProcessEnv)
	if !ok {
		return
	}
	serveFCMProcess(project)
	os.Exit(0)
}

func serveFCMProcess(project string) {
	if path := os.Getenv(FCMProcessCPUProfileEnv); path != "" {
		if out, err := os.Create(path); err == nil {
			defer out.Close()
			if pprof.StartCPUProfile(out) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	f := NewFCM()
	f.KeepPushes(false)
	h := fcmProcessHello{URL: f.URL(), CertDER: f.srv.Certificate().Raw, Bearer: f.Issue(project)}
	n, _ := strconv.Atoi(os.Getenv(fcmProcessDevicesEnv)) // 1 when absent or unreadable
	for range max(n, 1) {
		h.Devices = append(h.Devices, f.RegisterDevice(project))
	}
	line, _ := json.Marshal(h)
	if _, err := os.Stdout.Write(append(line, '\n')); err != nil {
		f.Close()
		return
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it or dies
	f.Close()
}
