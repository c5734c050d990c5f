package connector

import (
	"reflect"
	"testing"
	"time"
)

func TestRehireTraining(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	at := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	validity := map[string]time.Duration{"safety-101": year, "forklift": 2 * year, "gdpr": 30 * 24 * time.Hour}
	tests := []struct {
		name  string
		comps []CompletionRecord
		want  []CourseStatus
	}{
		{"None", nil, []CourseStatus{}},
		{"Valid", []CompletionRecord{{"safety-101", at(2026, 3, 1)}},
			[]CourseStatus{{Course: "safety-101", CompletedAt: at(2026, 3, 1), Completions: 1, Validity: year, ExpiresAt: at(2027, 3, 1), Status: CourseValid}}},
		{"Expired", []CompletionRecord{{"safety-101", at(2025, 3, 1)}},
			[]CourseStatus{{Course: "safety-101", CompletedAt: at(2025, 3, 1), Completions: 1, Validity: year, ExpiresAt: at(2026, 3, 1), Status: CourseExpired}}},
		{"ExpiresExactlyNow", []CompletionRecord{{"gdpr", now.Add(-30 * 24 * time.Hour)}},
			[]CourseStatus{{Course: "gdpr", CompletedAt: now.Add(-30 * 24 * time.Hour), Completions: 1, Validity: 30 * 24 * time.Hour, ExpiresAt: now, Status: CourseExpired}}},
		{"NoValidityConfigured", []CompletionRecord{{"onboarding", at(2019, 1, 1)}},
			[]CourseStatus{{Course: "onboarding", CompletedAt: at(2019, 1, 1), Completions: 1, Status: CourseNoExpiry}}},
		{"LatestCompletionCounts", []CompletionRecord{{"safety-101", at(2026, 2, 1)}, {"safety-101", at(2024, 2, 1)}},
			[]CourseStatus{{Course: "safety-101", CompletedAt: at(2026, 2, 1), Completions: 2, Validity: year, ExpiresAt: at(2027, 2, 1), Status: CourseValid}}},
		{"SortedByCourse", []CompletionRecord{{"safety-101", at(2024, 1, 1)}, {"forklift", at(2025, 1, 1)}},
			[]CourseStatus{
				{Course: "forklift", CompletedAt: at(2025, 1, 1), Completions: 1, Validity: 2 * year, ExpiresAt: at(2025, 1, 1).Add(2 * year), Status: CourseValid},
				{Course: "safety-101", CompletedAt: at(2024, 1, 1), Completions: 1, Validity: year, ExpiresAt: at(2024, 12, 31), Status: CourseExpired},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := RehireTraining(tt.comps, validity, now)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("RehireTraining =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}
