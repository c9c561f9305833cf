// Package envelope writes the JSON bodies clients of the gateway expect:
//
//	{"success":true,"data":{...}}
//	{"success":false,"error":{"code":"FILE_TOO_LARGE","message":"..."}}
package envelope

import (
	"encoding/json"
	"net/http"
)

// Error is the error member of a failed response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type body struct {
	Success bool   `json:"success"`
	Data    any    `json:"data,omitempty"`
	Error   *Error `json:"error,omitempty"`
}

// WriteData writes a successful response with status and data.
func WriteData(w http.ResponseWriter, status int, data any) error {
	return write(w, status, body{Success: true, Data: data})
}

// StatusClientClosedRequest is the status (nginx's 499) of a request whose
// client went away; nobody reads its answer, it is for the access log.
const StatusClientClosedRequest = 499

// WriteError writes a failed response.
func WriteError(w http.ResponseWriter, status int, code, message string) error {
	return write(w, status, body{Error: &Error{Code: code, Message: message}})
}

// WriteFailure is WriteError, but writes only the status for
// [StatusClientClosedRequest]: nobody is there to read a body.
func WriteFailure(w http.ResponseWriter, status int, code, message string) error {
	if status == StatusClientClosedRequest {
		w.WriteHeader(status)
		return nil
	}
	return WriteError(w, status, code, message)
}

func write(w http.ResponseWriter, status int, b body) error {
	buf, err := json.Marshal(b)
	if err != nil {
		return err
	}
	buf = append(buf, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err = w.Write(buf)
	return err
}
