package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/dustin/go-humanize"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// browserPageJS is the benchmark page's script: Uppy's core and S3 plugin
// from npm, unchanged, in companionEndpoint mode against the gateway's
// Companion routes (the session rides on a cookie), multipart with the
// given part size and request limit. The time of uppy.upload() (create,
// sign every part, upload every part to S3, complete) is measured in the
// page and left in window.outcome.
const browserPageJS = `import Uppy from "@uppy/core"
import AwsS3 from "@uppy/aws-s3"

window.upload = (partSize, limit) => {
  window.outcome = null
  const uppy = new Uppy({ autoProceed: false })
  uppy.use(AwsS3, {
    companionEndpoint: location.origin + "/api",
    shouldUseMultipart: true,
    getChunkSize: () => partSize,
    limit,
  })
  let parts = 0
  uppy.on("s3-multipart:part-uploaded", () => { parts++ })
  const file = document.getElementById("file").files[0]
  uppy.addFile({ name: file.name, type: file.type, data: file })
  const start = performance.now()
  uppy.upload().then(
    (result) => {
      const ms = performance.now() - start
      window.outcome = {
        ok: result.failed.length === 0,
        key: result.successful.length ? result.successful[0].response.body.key : "",
        error: result.failed.length ? String(result.failed[0].error) : "",
        parts,
        ms,
      }
    },
    (err) => { window.outcome = { ok: false, error: String(err), parts, ms: 0 } },
  )
}
`

const browserPageHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>Uppy benchmark page</title></head>
<body><input type="file" id="file"><script src="page.js"></script></body></html>
`

// browserRow is one row of the browser table.
type browserRow struct {
	path    string
	seconds []float64
	parts   int
}

// benchBrowser uploads a file of size bytes runs times from headless
// Chromium with Uppy's own @uppy/aws-s3 through the gateway's Companion
// routes (parts straight to SeaweedFS), and the same file as many times
// with aws-sdk-go-v2's manager.Uploader straight to SeaweedFS, with the
// same part size and parts in flight; the order alternates every run.
// Every stored object's size is checked; all are deleted at the end.
func benchBrowser(env *harness.Env, size, partSize int64, conc, runs int) ([]browserRow, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return nil, err
	}
	prefix := fmt.Sprintf("bench-browser/%d/", time.Now().UnixNano())
	defer reclaim(env, prefix)

	dir, err := benchUserDir("ugw-bench-browser-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	page := filepath.Join(dir, "page")
	if err := os.Mkdir(page, 0o755); err != nil {
		return nil, err
	}
	js, err := bundleUppy(root, browserPageJS)
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{"index.html": []byte(browserPageHTML), "page.js": js} {
		if err := os.WriteFile(filepath.Join(page, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	file := filepath.Join(dir, "video.bin")
	if err := writeRandomFile(file, size); err != nil {
		return nil, err
	}
	site := fmt.Sprintf("handle /page/* {\n\troot * %s\n\turi strip_prefix /page\n\tfile_server\n}\nhandle {\n\t%s\n}", page, companionSite(dir, prefix+"gateway/"))
	gw, token, err := startSignedIn(env, harness.GatewayConfig{Site: site})
	if err != nil {
		return nil, err
	}
	defer gw.Stop()
	ctx, stopBrowser, err := startChromium(filepath.Join(dir, "chromium"))
	if err != nil {
		return nil, err
	}
	defer stopBrowser()
	err = chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
			Name: "ugw_token", Value: token, URL: gw.URL, HTTPOnly: new(true), Secure: new(true), SameSite: network.CookieSameSiteStrict,
		})
		return err
	}))
	if err != nil {
		return nil, fmt.Errorf("setting the session cookie: %v", err)
	}

	uploader := manager.NewUploader(env.S3At(env.S3Endpoint, env.GatewayAccess, env.GatewaySecret), func(u *manager.Uploader) {
		u.PartSize = partSize
		u.Concurrency = conc
	})
	browser := browserRow{path: "headless Chromium, Uppy @uppy/aws-s3 (companionEndpoint: the gateway's /api/s3/* with a JWT cookie; parts straight to SeaweedFS)"}
	direct := browserRow{path: "aws-sdk-go-v2 manager.Uploader straight to SeaweedFS (gateway's keys, SSE-KMS)"}
	uploadBrowser := func() error {
		out, err := uppyUpload(ctx, gw.URL+"/page/index.html", file, partSize, conc)
		if err != nil {
			return fmt.Errorf("browser upload: %v\n%s", err, gw.Logs())
		}
		if err := checkStored(env, out.Key, size); err != nil {
			return err
		}
		browser.seconds = append(browser.seconds, out.MS/1000)
		browser.parts = out.Parts
		return nil
	}
	uploadDirect := func(i int) error {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		key := fmt.Sprintf("%sdirect/video-%d.bin", prefix, i)
		start := time.Now()
		_, err = uploader.Upload(context.Background(), &s3.PutObjectInput{
			Bucket: &env.Bucket, Key: &key, Body: f, ContentType: aws.String("application/octet-stream"),
			ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyId: &env.KMSKeyID,
		})
		if err != nil {
			return fmt.Errorf("SDK upload: %v", err)
		}
		direct.seconds = append(direct.seconds, time.Since(start).Seconds())
		direct.parts = int((size + partSize - 1) / partSize)
		return checkStored(env, key, size)
	}
	// Warm up both paths (the browser's first page and upload, the SDK's and
	// the gateway's connections and STS session) with a file of three parts.
	warm := filepath.Join(dir, "warm-up.bin")
	if err := writeRandomFile(warm, 2*partSize+1); err != nil {
		return nil, err
	}
	if _, err := uppyUpload(ctx, gw.URL+"/page/index.html", warm, partSize, conc); err != nil {
		return nil, fmt.Errorf("browser warm-up upload: %v\n%s", err, gw.Logs())
	}
	if f, err := os.Open(warm); err == nil {
		_, err = uploader.Upload(context.Background(), &s3.PutObjectInput{Bucket: &env.Bucket, Key: aws.String(prefix + "direct/warm-up.bin"), Body: f})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("SDK warm-up upload: %v", err)
		}
	}
	for i := range runs {
		first, second := uploadBrowser, func() error { return uploadDirect(i) }
		if i%2 == 1 {
			first, second = second, first
		}
		if err := first(); err != nil {
			return nil, err
		}
		if err := second(); err != nil {
			return nil, err
		}
		reclaim(env, prefix)
	}
	if uploads, _, err := env.Leftovers(context.Background(), prefix); err != nil || len(uploads) > 0 {
		return nil, fmt.Errorf("multipart uploads left open: %v %v", uploads, err)
	}
	return []browserRow{browser, direct}, nil
}

// uppyOutcome is what the benchmark page reports after uppy.upload().
type uppyOutcome struct {
	OK    bool    `json:"ok"`
	Key   string  `json:"key"`
	Error string  `json:"error"`
	Parts int     `json:"parts"`
	MS    float64 `json:"ms"`
}

// uppyUpload loads the page, picks file and runs Uppy's upload.
func uppyUpload(ctx context.Context, pageURL, file string, partSize int64, limit int) (uppyOutcome, error) {
	var out uppyOutcome
	err := chromedp.Do(ctx,
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible(chromedp.ID("file")),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{file}),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := chromedp.Evaluate[any](fmt.Sprintf("window.upload(%d, %d)", partSize, limit))(ctx, tg); err != nil {
				return err
			}
			for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				done, err := chromedp.Evaluate[bool](`window.outcome !== null`)(ctx, tg)
				if err != nil {
					return err
				}
				if done {
					out, err = chromedp.Evaluate[uppyOutcome](`window.outcome`)(ctx, tg)
					return err
				}
			}
			return context.DeadlineExceeded
		}),
	)
	if err == nil && !out.OK {
		err = errors.New(out.Error)
	}
	return out, err
}

// checkStored checks that key holds size bytes.
func checkStored(env *harness.Env, key string, size int64) error {
	head, err := env.S3().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &env.Bucket, Key: &key})
	if err != nil {
		return fmt.Errorf("%s: %v", key, err)
	}
	if aws.ToInt64(head.ContentLength) != size {
		return fmt.Errorf("%s: %d bytes stored, want %d", key, aws.ToInt64(head.ContentLength), size)
	}
	return nil
}

// startChromium starts headless Chromium (Debian's chromium, which
// integration/testenv/apps-up.sh installs; or UGW_CHROMIUM) with a fresh
// profile in profileDir, as integration/browser_test.go's newBrowser does.
func startChromium(profileDir string) (context.Context, func(), error) {
	bin := os.Getenv("UGW_CHROMIUM")
	if bin == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		return nil, nil, errors.New("chromium is not installed (integration/testenv/apps-up.sh installs it; or set UGW_CHROMIUM)")
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profileDir),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The gateway's certificate comes from its internal test CA.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1000, 700),
	)
	bctx, cancelCtx := chromedp.NewContext(actx)
	stop := func() {
		cancelCtx()
		cancelAlloc()
	}
	// The first run starts the browser; it lives as long as bctx.
	if err := chromedp.Do(bctx); err != nil {
		stop()
		return nil, nil, fmt.Errorf("starting chromium: %v", err)
	}
	return bctx, stop, nil
}

// bundleUppy bundles entry (a page script importing Uppy's packages) with
// esbuild from the npm package dir integration/testenv/uppy that
// apps-up.sh installed, as integration/uppy_test.go's bundleUppy does.
func bundleUppy(root, entry string) ([]byte, error) {
	modules, err := npmModules(root, "integration/testenv/uppy", "UPLOAD_GATEWAY_UPPY_DIR", "Uppy and esbuild", "integration/testenv/apps-up.sh")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(modules, ".bin", "esbuild"),
		"--bundle", "--format=iife", "--target=es2020", "--log-level=warning", "--sourcefile=page.js")
	cmd.Dir = filepath.Dir(modules) // esbuild resolves stdin's imports from here
	cmd.Stdin = bytes.NewReader([]byte(entry))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("esbuild: %v\n%s", err, errb.String())
	}
	return out.Bytes(), nil
}

// writeRandomFile writes size random bytes to name.
func writeRandomFile(name string, size int64) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, harness.NewRandomReader(uint64(time.Now().UnixNano()), size)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func printBrowser(rows []browserRow, size, partSize int64, conc, runs int) {
	host, _ := os.Hostname()
	fmt.Printf("\nBrowser multipart upload of %s: %s parts, %d in flight, median of %d runs (order alternated)\n",
		humanize.IBytes(uint64(size)), humanize.IBytes(uint64(partSize)), conc, runs)
	fmt.Printf("machine: %s, %d CPUs, %s/%s, %s; date %s\n\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH,
		runtime.Version(), time.Now().UTC().Format("2006-01-02"))
	fmt.Println("| path | parts | seconds (median) | runs (s) | MiB/s | ratio to direct |")
	fmt.Println("|---|---:|---:|---|---:|---:|")
	directMiBps := float64(size) / (1 << 20) / median(rows[len(rows)-1].seconds)
	for _, r := range rows {
		sec := median(r.seconds)
		mibps := float64(size) / (1 << 20) / sec
		all := ""
		for i, s := range r.seconds {
			if i > 0 {
				all += ", "
			}
			all += fmt.Sprintf("%.2f", s)
		}
		fmt.Printf("| %s | %d | %.2f | %s | %.1f | %.2f |\n", r.path, r.parts, sec, all, mibps, mibps/directMiBps)
	}
	fmt.Println("\nThe browser's time is uppy.upload() measured in the page (create through the gateway, a part URL from the gateway per part, " +
		"the parts from Chromium straight to SeaweedFS, complete through the gateway, which lists the parts itself); the file is read from disk by Chromium. " +
		"The SDK's is manager.Uploader.Upload of the same file (create, parts, complete, all straight to SeaweedFS).")
}
