package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The layers must be the ones Aula publishes (core/src/room/simulcast.rs tests the same sizes).
func TestLayersFollowAulasRule(t *testing.T) {
	sizes := func(layers []Layer) [][2]int {
		var out [][2]int
		for _, l := range layers {
			out = append(out, [2]int{l.Width, l.Height})
		}
		return out
	}
	hd := simulcastLayers(1280, 720, 1_500_000)
	if got, want := sizes(hd), [][2]int{{320, 180}, {640, 360}, {1280, 720}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("720p layers %v, want %v", got, want)
	}
	if hd[2].MaxBitrateBps != 1_500_000 || hd[1].MaxBitrateBps <= 400_000 || hd[1].MaxBitrateBps >= 600_000 ||
		hd[0].MaxBitrateBps <= 100_000 || hd[0].MaxBitrateBps >= 200_000 {
		t.Fatalf("720p ceilings %+v", hd)
	}
	if got, want := sizes(simulcastLayers(640, 360, 500_000)), [][2]int{{320, 180}, {640, 360}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("360p layers %v, want %v", got, want)
	}
	if n := len(simulcastLayers(320, 240, 300_000)); n != 1 {
		t.Fatalf("240p has %d layers, want 1", n)
	}
	if b := defaultBitrateBps(640, 360, 15); b != 192_000 {
		t.Fatalf("360p15 bitrate %d, want 192000", b)
	}
	if b := defaultBitrateBps(160, 120, 5); b != minDefaultBitrate {
		t.Fatalf("tiny picture bitrate %d, want the floor", b)
	}
}

func TestBadResolutionsAreRefused(t *testing.T) {
	for _, s := range []string{"", "640", "0x360", "641x360", "-640x360", "axb"} {
		if _, _, err := parseResolution(s); err == nil {
			t.Errorf("%q was accepted", s)
		}
	}
	if w, h, err := parseResolution("1280x720"); err != nil || w != 1280 || h != 720 {
		t.Errorf("1280x720 read as %d x %d, %v", w, h, err)
	}
}

// Parameter sets travel with the picture after them; each slice ends a picture.
func TestAccessUnitsEndWithTheirSlice(t *testing.T) {
	start := []byte{0, 0, 0, 1}
	var stream []byte
	for _, nal := range [][]byte{{0x67, 1, 2}, {0x68, 3}, {0x65, 4, 5, 6}, {0x41, 7}, {0x41, 8, 9}} {
		stream = append(append(stream, start...), nal...)
	}
	path := filepath.Join(t.TempDir(), "clip.h264")
	if err := os.WriteFile(path, stream, 0o644); err != nil {
		t.Fatal(err)
	}
	frames, err := readAccessUnits(path)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{
		append(append(append(append(append([]byte{}, start...), 0x67, 1, 2), start...), 0x68, 3), append(start, 0x65, 4, 5, 6)...),
		append(append([]byte{}, start...), 0x41, 7),
		append(append([]byte{}, start...), 0x41, 8, 9),
	}
	if !reflect.DeepEqual(frames, want) {
		t.Fatalf("frames %x, want %x", frames, want)
	}
}
