package main

import (
	"fmt"
	"math"
)

// Report is what the load generator found, shaped like `aula load-test`'s summary where the
// two measure the same thing. Pictures here are received (counted by the RTP marker bit),
// not decoded: the generator does not decode.
type Report struct {
	// Participants asked for, joined, and failed (with the first error).
	Participants int    `json:"participants"`
	Joined       int    `json:"joined"`
	Failed       int    `json:"failed"`
	FirstError   string `json:"first_error,omitempty"`
	// From the connect to the joined room, over the participants that joined.
	JoinMs Percentiles `json:"join_ms"`
	// Video streams each receiver should get (its room's publishers other than itself), summed.
	ExpectedStreams int `json:"expected_streams"`
	// Received picture rate per expected stream over the measured window: median and lowest.
	ReceivedFPSMedian float64 `json:"received_fps_median"`
	ReceivedFPSMin    float64 `json:"received_fps_min"`
	// Receivers that received no video picture in the window although they should have.
	StarvedReceivers int `json:"starved_receivers"`
	// What the server forwarded, as its receivers counted it over the window: RTP packets and
	// RTP payload bytes, video and audio together, and by kind.
	ForwardedPackets      uint64  `json:"forwarded_packets"`
	ForwardedBytes        uint64  `json:"forwarded_bytes"`
	ForwardedVideoPackets uint64  `json:"forwarded_video_packets"`
	ForwardedAudioPackets uint64  `json:"forwarded_audio_packets"`
	ForwardedMbps         float64 `json:"forwarded_mbps"`
	// The simulcast layers each publisher sent, lowest first.
	Layers []Layer `json:"layers"`
	// Seconds measured.
	DurationS float64 `json:"duration_s"`
}

func summarize(cfg *Config, m *Media, participants []*Participant, from, to []Snapshot, failed int, firstError string, seconds float64) Report {
	report := Report{
		Participants:   cfg.Rooms * cfg.ParticipantsPerRoom,
		Joined:         len(participants),
		Failed:         failed,
		FirstError:     firstError,
		DurationS:      seconds,
		ReceivedFPSMin: math.NaN(),
	}
	for _, clip := range m.Layers {
		report.Layers = append(report.Layers, clip.Layer)
	}
	publishersIn := make(map[int]int)
	var joinMs []float64
	for _, p := range participants {
		joinMs = append(joinMs, p.JoinMs)
		if p.Publishes {
			publishersIn[p.RoomIndex]++
		}
	}
	report.JoinMs = percentilesOf(joinMs)
	var perStreamFPS []float64
	for i, p := range participants {
		got := to[i].minus(from[i])
		report.ForwardedVideoPackets += got.VideoPackets
		report.ForwardedAudioPackets += got.AudioPackets
		report.ForwardedBytes += got.VideoBytes + got.AudioBytes
		streams := publishersIn[p.RoomIndex]
		if p.Publishes {
			streams--
		}
		if streams <= 0 {
			continue
		}
		report.ExpectedStreams += streams
		if got.VideoFrames == 0 {
			report.StarvedReceivers++
		}
		fps := float64(got.VideoFrames) / seconds / float64(streams)
		for range streams {
			perStreamFPS = append(perStreamFPS, fps)
		}
	}
	report.ForwardedPackets = report.ForwardedVideoPackets + report.ForwardedAudioPackets
	if seconds > 0 {
		report.ForwardedMbps = float64(report.ForwardedBytes) * 8 / seconds / 1e6
	}
	if len(perStreamFPS) > 0 {
		report.ReceivedFPSMedian = percentilesOf(perStreamFPS).P50
		report.ReceivedFPSMin = perStreamFPS[0]
		for _, fps := range perStreamFPS {
			report.ReceivedFPSMin = math.Min(report.ReceivedFPSMin, fps)
		}
	} else {
		report.ReceivedFPSMin = 0
	}
	return report
}

func (r *Report) print() {
	fmt.Printf("joined %d/%d (join p50 %.0f ms, p95 %.0f ms); %d streams: received fps median %.1f, lowest %.1f; "+
		"forwarded %d packets, %.2f Mbit/s; %d receivers starved\n",
		r.Joined, r.Participants, r.JoinMs.P50, r.JoinMs.P95, r.ExpectedStreams, r.ReceivedFPSMedian, r.ReceivedFPSMin,
		r.ForwardedPackets, r.ForwardedMbps, r.StarvedReceivers)
}
