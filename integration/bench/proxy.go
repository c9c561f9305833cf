package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/caddy-upload-gateway/upload-gateway/integration/harness"
)

// startProxy starts a second Caddy process whose HTTPS and plain HTTP sites
// are nothing but Caddy's reverse_proxy to the S3 server: the cost of
// putting Caddy in the path without the gateway.
//
// reverse_proxy passes the client's Host header upstream unchanged, so the
// SigV4 signature the SDK computed for the proxy's host:port validates at
// S3; the X-Forwarded-* headers it adds are not signed headers.
func startProxy(env *harness.Env, endpoint string) (*harness.Gateway, error) {
	upstream := strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")
	site := fmt.Sprintf("reverse_proxy %s", upstream)
	p, err := env.StartGateway(harness.GatewayConfig{Site: site, PlainSite: site})
	if err != nil {
		return nil, fmt.Errorf("starting the reverse_proxy: %v", err)
	}
	return p, nil
}

// proxyS3Client is an S3 client like the direct one (the gateway's keys,
// path style, the SDK's own HTTP transport) whose endpoint is the proxy.
// For the HTTPS endpoint it trusts the proxy's internal CA.
func proxyS3Client(env *harness.Env, endpoint string, tlsFrom *harness.Gateway) *s3.Client {
	opts := s3.Options{
		Region:       env.Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(env.GatewayAccess, env.GatewaySecret, ""),
	}
	if tlsFrom != nil {
		cfg := tlsFrom.Client.Transport.(*http.Transport).TLSClientConfig
		opts.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.TLSClientConfig = cfg.Clone()
			if tr.TLSClientConfig.MinVersion == 0 {
				tr.TLSClientConfig.MinVersion = tls.VersionTLS12
			}
		})
	}
	return s3.New(opts)
}
