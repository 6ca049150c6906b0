package main

import (
	"fmt"
	"math"
)

// Layer is one simulcast layer a publisher sends: its picture size and its bit-rate ceiling.
type Layer struct {
	Width         int `json:"width"`
	Height        int `json:"height"`
	MaxBitrateBps int `json:"max_bitrate_bps"`
}

// The rules below are the ones `aula load-test` publishes with (cli/src/join.rs
// `default_bitrate_bps` and core/src/room/simulcast.rs `simulcast_layers`), so both servers
// forward the same streams. Keep them in step when those change.
const (
	minLayerWidth       = 240
	minSimulcastHeight  = 360
	minBaseBitrate      = 50_000
	areaExponent        = 0.8
	maxVideoLayers      = 3
	minDefaultBitrate   = 150_000
	maxDefaultBitrate   = 4_000_000
	pixelsPerBitPerSecs = 18
)

// defaultBitrateBps is the top layer's ceiling for a picture of width x height at fps.
func defaultBitrateBps(width, height, fps int) int {
	b := width * height * fps / pixelsPerBitPerSecs
	return min(max(b, minDefaultBitrate), maxDefaultBitrate)
}

// simulcastLayers lists the layers of a camera picture, lowest first: the full picture, half
// and a quarter of it, as far as they stay at least 240 pixels wide; under 360 lines, one layer.
func simulcastLayers(width, height, bitrateBps int) []Layer {
	if min(width, height) < minSimulcastHeight {
		return []Layer{{Width: width, Height: height, MaxBitrateBps: bitrateBps}}
	}
	var layers []Layer
	for _, scale := range []int{4, 2, 1} {
		if width/scale < minLayerWidth {
			continue
		}
		w, h := width, height
		if scale != 1 {
			w, h = scaledSize(width, height, scale)
		}
		area := 1.0 / float64(scale*scale)
		bitrate := int(float64(bitrateBps) * math.Pow(area, areaExponent))
		layers = append(layers, Layer{Width: w, Height: h, MaxBitrateBps: max(bitrate, minBaseBitrate)})
	}
	if len(layers) > maxVideoLayers {
		layers = layers[:maxVideoLayers]
	}
	return layers
}

// scaledSize divides a picture by scale, rounded down to even sizes (what H.264 4:2:0 needs).
func scaledSize(width, height, scale int) (int, int) {
	w := max((width/scale)&^1, 2)
	h := max((height/scale)&^1, 2)
	return w, h
}

// parseResolution reads WIDTHxHEIGHT.
func parseResolution(s string) (int, int, error) {
	var w, h int
	if _, err := fmt.Sscanf(s, "%dx%d", &w, &h); err != nil || w <= 0 || h <= 0 || w%2 != 0 || h%2 != 0 {
		return 0, 0, fmt.Errorf("resolution %q is not WIDTHxHEIGHT with even, positive sizes", s)
	}
	return w, h, nil
}
