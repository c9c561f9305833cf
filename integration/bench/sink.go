package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
	"github.com/caddy-upload-gateway/upload-gateway/integration/s3sink"
)

// s3Target is the S3 server a streaming table writes to.
type s3Target struct {
	name     string // seaweedfs or sink
	title    string // for the table heading
	endpoint string
	pids     []int               // processes whose CPU is the S3 column
	reclaim  func(prefix string) // frees what a round stored; nil: nothing to free
	gwEnv    []string            // environment of gateways writing to it
}

func seaweedTarget(env *harness.Env) *s3Target {
	return &s3Target{
		name:     "seaweedfs",
		title:    "SeaweedFS with SSE-KMS",
		endpoint: env.S3Endpoint,
		pids:     s3PIDs(),
		reclaim:  func(prefix string) { reclaim(env, prefix) },
	}
}

// sinkServer is the s3sink running in its own process (this program
// re-executed with -serve-sink), so that its CPU is measured apart from the
// load generator's.
type sinkServer struct {
	cmd *exec.Cmd
	url string
}

func startSink() (*sinkServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve-sink", fmt.Sprint("-sink-rate=", sinkRate))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("starting the s3sink: %v", err)
	}
	return &sinkServer{cmd: cmd, url: "http://" + strings.TrimSpace(line)}, nil
}

func (s *sinkServer) target() *s3Target {
	title := "s3sink (a minimal in-memory S3 of this repository, NOT SeaweedFS or S3: it checks every checksum and signed payload hash, stores no bytes; SSE-KMS headers ignored)"
	if sinkRate > 0 {
		title += fmt.Sprintf(", reading at most %d MB/s", sinkRate/1e6)
	}
	return &s3Target{
		name:     "sink",
		title:    title,
		endpoint: s.url,
		pids:     []int{s.cmd.Process.Pid},
		gwEnv:    []string{"UGW_S3_ENDPOINT=" + s.url},
	}
}

func (s *sinkServer) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// sinkRate is -sink-rate: the s3sink's Rate in bytes per second.
var sinkRate int64

// serveSink is the -serve-sink mode: it serves the s3sink on a loopback
// port, prints the address and runs until killed.
func serveSink() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3sink:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	sink := s3sink.New()
	sink.Rate = sinkRate
	srv := &http.Server{Handler: sink}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "s3sink:", err)
		os.Exit(1)
	}
}
