package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; it
// is 100 on every Linux architecture Go supports.
const clockTick = 100

// cpuTime is the user+system CPU time a process has used so far, read from
// /proc/<pid>/stat; pid 0 means this process.
func cpuTime(pid int) (time.Duration, error) {
	name := "/proc/self/stat"
	if pid > 0 {
		name = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after it are
	// counted from its closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: unexpected format", name)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: unexpected format", name)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: unexpected format", name)
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// ioCounts are a process's read and write system calls so far and the bytes
// they moved, from /proc/<pid>/io (syscr, syscw, rchar, wchar).
type ioCounts struct {
	reads, writes, readBytes, writeBytes int64
}

// ioOf reads the I/O counters of process pid; zero counts if unreadable.
func ioOf(pid int) ioCounts {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return ioCounts{}
	}
	var c ioCounts
	for line := range strings.Lines(string(b)) {
		name, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch name {
		case "syscr":
			c.reads = n
		case "syscw":
			c.writes = n
		case "rchar":
			c.readBytes = n
		case "wchar":
			c.writeBytes = n
		}
	}
	return c
}

// cpuUse is the CPU time each process on an upload path used per GiB moved,
// with the system calls of the process in the middle.
type cpuUse struct {
	client, middle, s3 float64 // seconds per GiB
	// The middle process's read and write calls per MiB moved and the
	// bytes an average one moved.
	readsPerMiB, writesPerMiB, bytesPerRead, bytesPerWrite float64
}

func (c cpuUse) total() float64 { return c.client + c.middle + c.s3 }

// cpuMeter samples the CPU time of the load generator (this process), the
// process in the middle (gateway or proxy; 0 for none) and the S3 server with
// its KMS.
type cpuMeter struct {
	middle int
	s3     []int
}

type cpuSnapshot struct {
	cpu [3]time.Duration
	io  ioCounts // of the middle process
}

func (m cpuMeter) snapshot() cpuSnapshot {
	var s cpuSnapshot
	s.cpu[0], _ = cpuTime(0)
	if m.middle > 0 {
		s.cpu[1], _ = cpuTime(m.middle)
		s.io = ioOf(m.middle)
	}
	for _, pid := range m.s3 {
		d, _ := cpuTime(pid)
		s.cpu[2] += d
	}
	return s
}

// since returns the CPU used since before, per GiB of size bytes.
func (m cpuMeter) since(before cpuSnapshot, size int64) cpuUse {
	after := m.snapshot()
	per := func(i int) float64 { return (after.cpu[i] - before.cpu[i]).Seconds() / (float64(size) / (1 << 30)) }
	use := cpuUse{client: per(0), middle: per(1), s3: per(2)}
	io := ioCounts{
		reads: after.io.reads - before.io.reads, writes: after.io.writes - before.io.writes,
		readBytes: after.io.readBytes - before.io.readBytes, writeBytes: after.io.writeBytes - before.io.writeBytes,
	}
	if io.reads > 0 && io.writes > 0 {
		mib := float64(size) / (1 << 20)
		use.readsPerMiB, use.writesPerMiB = float64(io.reads)/mib, float64(io.writes)/mib
		use.bytesPerRead, use.bytesPerWrite = float64(io.readBytes)/float64(io.reads), float64(io.writeBytes)/float64(io.writes)
	}
	return use
}

// s3PIDs are the processes of the S3 server (SeaweedFS and its KMS) from the
// test environment's env file.
func s3PIDs() []int {
	var pids []int
	for _, k := range []string{"UGW_WEED_PID", "UGW_KMS_PID"} {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
			pids = append(pids, n)
		}
	}
	return pids
}

// medianCPU is the element-wise median of the samples.
func medianCPU(v []cpuUse) cpuUse {
	pick := func(f func(cpuUse) float64) float64 {
		s := make([]float64, len(v))
		for i, c := range v {
			s[i] = f(c)
		}
		return median(s)
	}
	return cpuUse{
		client: pick(func(c cpuUse) float64 { return c.client }),
		middle: pick(func(c cpuUse) float64 { return c.middle }),
		s3:     pick(func(c cpuUse) float64 { return c.s3 }),

		readsPerMiB:   pick(func(c cpuUse) float64 { return c.readsPerMiB }),
		writesPerMiB:  pick(func(c cpuUse) float64 { return c.writesPerMiB }),
		bytesPerRead:  pick(func(c cpuUse) float64 { return c.bytesPerRead }),
		bytesPerWrite: pick(func(c cpuUse) float64 { return c.bytesPerWrite }),
	}
}
