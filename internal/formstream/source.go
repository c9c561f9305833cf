package formstream

import (
	"bytes"
	"fmt"
	"io"
)

// errBodyEnd is what [source] returns instead of io.EOF.
//
// mime/multipart cannot tell a body that ends right after the closing
// boundary from one that ends inside a part's headers: [multipart.Reader]
// returns io.EOF for both. With errBodyEnd in place of io.EOF, NextRawPart
// returns a bare io.EOF only for a closing boundary line that ends with a
// line break, and an error wrapping errBodyEnd for every body that simply
// stops, which [source.endsWithCloseDelimiter] then sorts out.
var errBodyEnd = fmt.Errorf("body ends before the closing boundary: %w", io.ErrUnexpectedEOF)

// tailSize is how many of the last body bytes a source keeps: enough for a
// closing boundary line ("--" + 70 + "--") and some trailing white space.
const tailSize = 256

// errHeaderTooLarge is what [source] returns when a part's header block
// runs past source.headerLeft.
var errHeaderTooLarge = fmt.Errorf("part header too large")

// source wraps the request body for the multipart reader.
type source struct {
	r          io.Reader
	boundary   string
	err        error // first error of r other than io.EOF: a failure of the body itself
	headerLeft int64 // while >= 0, the bytes it may still return (reading a header block)
	tail       [tailSize]byte
	ntail      int
}

func newSource(r io.Reader, boundary string) *source {
	return &source{r: r, boundary: boundary, headerLeft: -1}
}

func (s *source) Read(p []byte) (int, error) {
	if s.headerLeft == 0 {
		return 0, errHeaderTooLarge
	}
	if s.headerLeft > 0 && int64(len(p)) > s.headerLeft {
		p = p[:s.headerLeft]
	}
	n, err := s.r.Read(p)
	if s.headerLeft > 0 {
		s.headerLeft -= int64(n)
	}
	s.keepTail(p[:n])
	switch {
	case err == io.EOF:
		err = errBodyEnd
	case err != nil && s.err == nil:
		s.err = err
	}
	return n, err
}

func (s *source) keepTail(b []byte) {
	if len(b) >= tailSize {
		s.ntail = copy(s.tail[:], b[len(b)-tailSize:])
		return
	}
	keep := min(s.ntail, tailSize-len(b))
	copy(s.tail[:keep], s.tail[s.ntail-keep:s.ntail])
	s.ntail = keep + copy(s.tail[keep:], b)
}

// endsWithCloseDelimiter reports whether the body read so far ends with a
// closing boundary line without a line break: "--boundary--" at the start of
// a line, then spaces or tabs only (what [multipart.Reader] accepts).
func (s *source) endsWithCloseDelimiter() bool {
	t := s.tail[:s.ntail]
	i := bytes.LastIndexByte(t, '\n')
	if i < 0 && s.ntail == tailSize {
		return false // the line may have started before the tail
	}
	line, ok := bytes.CutPrefix(t[i+1:], []byte("--"+s.boundary+"--"))
	return ok && len(bytes.Trim(line, " \t")) == 0
}
