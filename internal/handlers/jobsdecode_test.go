package handlers

import (
	"reflect"
	"testing"

	"github.com/storaged/storaged/internal/backend"
)

// TestDecodeEnqueueBatchOnePass: the one-pass decoder of an enqueueMany
// body gives what decoding item by item gives, params or error message,
// for bodies that pass and for bodies that fail in each way an item can.
func TestDecodeEnqueueBatchOnePass(t *testing.T) {
	byItem := func(b []byte) ([]backend.EnqueueParams, error) {
		raws, err := decodeArray(b, "jobs")
		if err != nil {
			return nil, err
		}
		return eachItem(raws, DecodeEnqueue)
	}
	for _, body := range []string{
		`[{"data":1}]`,
		` [ {"data":{"a":[1,2]},"priority":3,"maxAttempts":2,"delayMs":5}, {"data":"x","key":"k","timeoutMs":7,"traceparent":"t"} ] `,
		`[{"data":null},{},{"runAt":"2026-01-02T15:04:05.123Z"}]`,
		`[{"data":1,"backoff":{"type":"fixed","delayMs":10,"maxDelayMs":20}},{"unique":{"key":"u","states":["completed"],"periodMs":9,"mode":"replace"}}]`,
		`[]`,
		`[{"data":1},null]`,
		`[{"data":1},2]`,
		`[{"data":1},[]]`,
		`[{"data":1},{"nope":1}]`,
		`[{"data":1},{"backoff":{"type":"fixed","nope":1}}]`,
		`[{"data":1},{"priority":1.5}]`,
		`[{"data":1},{"priority":"1"}]`,
		`[{"data":1},{"runAt":"yesterday"}]`,
		`[{"data":1},{"runAt":"2026-01-02T15:04:05Z","delayMs":1}]`,
		`[{"data":1},{"key":""}]`,
		`[{"data":1},{"key":"a","unique":{"key":"b"}}]`,
		`[{"data":1}]]`,
		`[{"data":1}] {}`,
		`[{"data":1}`,
		`{"data":1}`,
		`null`,
		``,
		`[{"data":"\udc00"}]`,
		`[{"data":1,"data":2}]`,
	} {
		got, gotErr := DecodeEnqueueBatch([]byte(body))
		want, wantErr := byItem([]byte(body))
		if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Errorf("%s: error %v, item by item %v", body, gotErr, wantErr)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, item by item %+v", body, got, want)
		}
		if _, onePass := decodeObjects[enqueueBody]([]byte(body)); wantErr == nil && !onePass {
			t.Errorf("%s: decoded item by item, not in one pass", body)
		}
	}
}
