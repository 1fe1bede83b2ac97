package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
// Linux fixes it at 100 for user space whatever the kernel's HZ.
const clockTicks = 100

// cpuSeconds is a process's user+system CPU time so far, from
// /proc/PID/stat (fields 14 and 15).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields we want are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cannot parse /proc/%d/stat: %w", pid, err)
	}
	return float64(ut+st) / clockTicks, nil
}

// cpuClockSeconds is a process's CPU time so far to the nanosecond, from
// its CPU-time clock (clock_getcpuclockid(3): CPUCLOCK_SCHED of the whole
// thread group, exited threads included), where /proc/PID/stat counts
// 10 ms ticks. For loads too short for ticks (kakao-oidc's misses).
func cpuClockSeconds(pid int) (float64, error) {
	const cpuclockSched = 2
	clock := int32(^uint32(pid)<<3) | cpuclockSched
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, uintptr(clock), uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, fmt.Errorf("clock_gettime of process %d's CPU clock: %w", pid, errno)
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9, nil
}

// procStatusKB reads one "Name:  N kB" line of /proc/PID/status, in bytes.
func procStatusKB(pid int, name string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse %s of /proc/%d/status: %w", name, pid, err)
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", name, pid)
}

// childPIDs lists the processes whose parent is pid (nginx's workers).
func childPIDs(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// usage is a snapshot of the CPU time of a set of processes.
type usage struct {
	cpu float64
}

// measured is something whose processes the bench measures: a server
// under test (playerguard, the ceiling, nginx).
type measured interface {
	// PIDs lists the processes to sum CPU and memory over.
	PIDs() []int
}

// cpuClock sums cpuClockSeconds over m's processes.
func cpuClock(m measured) float64 {
	var s float64
	for _, pid := range m.PIDs() {
		if c, err := cpuClockSeconds(pid); err == nil {
			s += c
		}
	}
	return s
}

func snapshot(m measured) usage {
	var u usage
	for _, pid := range m.PIDs() {
		if s, err := cpuSeconds(pid); err == nil {
			u.cpu += s
		}
	}
	return u
}

// peakRSS sums VmHWM (the peak resident set) over m's processes.
func peakRSS(m measured) int64 {
	var n int64
	for _, pid := range m.PIDs() {
		if b, err := procStatusKB(pid, "VmHWM"); err == nil {
			n += b
		}
	}
	return n
}

// currentRSS sums VmRSS over m's processes.
func currentRSS(m measured) int64 {
	var n int64
	for _, pid := range m.PIDs() {
		if b, err := procStatusKB(pid, "VmRSS"); err == nil {
			n += b
		}
	}
	return n
}

// process is a subprocess the bench started: playerguard, the ceiling,
// nginx, the child fake upstream.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer // stdout and stderr, last few KiB, for error messages
	done chan struct{}
	err  error // set before done is closed
}

// startProcess starts cmd (its Stdout and Stderr are set here unless
// already set) and reaps it in the background.
func startProcess(name string, cmd *exec.Cmd) (*process, error) {
	p := &process{name: name, cmd: cmd, out: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.out
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) PID() int    { return p.cmd.Process.Pid }
func (p *process) PIDs() []int { return []int{p.PID()} }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then kills. Only this process,
// by its id.
func (p *process) stop(grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// failure describes an unexpected exit, with the tail of its output.
func (p *process) failure() error {
	return fmt.Errorf("%s exited (%v); its output ends with:\n%s", p.name, p.err, p.out.String())
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// freePorts returns n distinct loopback addresses that were free a moment
// ago: all n are held open until each is chosen, so two can never be the
// same port (closing one before asking for the next let the kernel hand
// it out twice). Whoever binds them later may still lose one to a race.
func freePorts(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// waitHTTP polls url until it answers 200, p exits, or timeout passes.
func waitHTTP(url string, p *process, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	for {
		if p != nil && p.exited() {
			return p.failure()
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v", url, timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitTCP polls addr until it accepts a connection, p exits, or timeout.
func waitTCP(addr string, p *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p != nil && p.exited() {
			return p.failure()
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %v", addr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanEnv is the bench's environment without PLAYERGUARD_ variables:
// playerguard treats unknown ones as errors, and a stray one from the
// caller's shell must not change what is measured.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLAYERGUARD_") {
			out = append(out, kv)
		}
	}
	return out
}
