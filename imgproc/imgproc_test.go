package imgproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNormalizerModes(t *testing.T) {
	type probe struct {
		c    int // output channel
		p    uint8
		want float32
	}
	tests := []struct {
		name   string
		norm   Norm
		bgr    bool
		probes []probe
	}{
		{"torch imagenet default", Norm{Mode: ModeTorch}, false, []probe{
			{0, 0, -0.485 / 0.229}, {0, 255, (1 - 0.485) / 0.229},
			{1, 128, (128.0/255 - 0.456) / 0.224}, {2, 64, (64.0/255 - 0.406) / 0.225},
		}},
		{"torch cifar10", Norm{Mode: ModeTorch, Mean: []float32{0.4914, 0.4822, 0.4465}, Std: []float32{0.2470, 0.2435, 0.2616}}, false, []probe{
			{0, 0, -0.4914 / 0.2470}, {2, 255, (1 - 0.4465) / 0.2616},
		}},
		{"caffe", Norm{Mode: ModeCaffe}, true, []probe{
			{0, 0, -103.939}, {1, 255, 255 - 116.779}, {2, 100, 100 - 123.68},
		}},
		{"tf", Norm{Mode: ModeTF}, false, []probe{
			{0, 0, -1}, {1, 255, 1}, {2, 51, -0.6},
		}},
		{"raw", Norm{Mode: ModeRaw}, false, []probe{{0, 0, 0}, {1, 200, 200}, {2, 255, 255}}},
		{"custom", Norm{Mode: ModeCustom, Scale: 2, Mean: []float32{1, 2, 3}, Std: []float32{2, 4, 8}}, false, []probe{
			{0, 10, 9.5}, {1, 10, 4.5}, {2, 10, 2.125},
		}},
		{"custom bgr no std", Norm{Mode: ModeCustom, Mean: []float32{10, 20, 30}, BGR: true}, true, []probe{
			{0, 10, 0}, {2, 40, 10},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			z, err := NewNormalizer(tc.norm)
			if err != nil {
				t.Fatal(err)
			}
			if z.BGR() != tc.bgr || z.Mode() != tc.norm.Mode || z.String() == "" {
				t.Errorf("BGR %v mode %q desc %q", z.BGR(), z.Mode(), z)
			}
			for _, pr := range tc.probes {
				got := z.Value(pr.c, pr.p)
				if math.Abs(float64(got-pr.want)) > 1e-5*math.Max(1, math.Abs(float64(pr.want))) {
					t.Errorf("channel %d, sample %d: got %v, want %v", pr.c, pr.p, got, pr.want)
				}
			}
		})
	}
}

// TestNormalizerChannelOrder writes a 2×1 image and checks every value's
// place in the NCHW batch, for RGB and BGR output.
func TestNormalizerChannelOrder(t *testing.T) {
	img := NewImage(2, 1)
	copy(img.Pix, []uint8{1, 2, 3, 4, 5, 6}) // R: 1 2, G: 3 4, B: 5 6
	raw, _ := NewNormalizer(Norm{Mode: ModeRaw})
	bgr, _ := NewNormalizer(Norm{Mode: ModeCustom, BGR: true, Mean: []float32{0, 0, 0}})
	dst := make([]float32, 3*6)
	for i := range dst {
		dst[i] = -1
	}
	if err := raw.Write(dst, 1, img); err != nil {
		t.Fatal(err)
	}
	if err := bgr.Write(dst, 2, img); err != nil {
		t.Fatal(err)
	}
	want := []float32{-1, -1, -1, -1, -1, -1, 1, 2, 3, 4, 5, 6, 5, 6, 3, 4, 1, 2}
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("batch %v, want %v", dst, want)
		}
	}
	if err := raw.Write(dst, 3, img); err == nil || !strings.Contains(err.Error(), "no item 3") {
		t.Errorf("item past the buffer: %v", err)
	}
	if err := raw.WritePlanar(dst[:5], img.Pix); err == nil {
		t.Error("short destination accepted")
	}
}

// A custom normaliser with scale 1/255 (models.Preprocess's form of the
// torch convention) gives exactly the torch mode's values.
func TestCustomScaleMatchesTorch(t *testing.T) {
	mean, std := []float32{0.4914, 0.4822, 0.4465}, []float32{0.2470, 0.2435, 0.2616}
	torch, err := NewNormalizer(Norm{Mode: ModeTorch, Mean: mean, Std: std})
	if err != nil {
		t.Fatal(err)
	}
	custom, err := NewNormalizer(Norm{Mode: ModeCustom, Scale: 1.0 / 255, Mean: mean, Std: std})
	if err != nil {
		t.Fatal(err)
	}
	for c := 0; c < 3; c++ {
		for p := 0; p < 256; p++ {
			if a, b := torch.Value(c, uint8(p)), custom.Value(c, uint8(p)); a != b {
				t.Fatalf("channel %d, sample %d: torch %v, custom %v", c, p, a, b)
			}
		}
	}
}

func TestNewNormalizerErrors(t *testing.T) {
	tests := []struct {
		norm Norm
		want string
	}{
		{Norm{Mode: "keras"}, `unknown preprocessing mode "keras"`},
		{Norm{}, `unknown preprocessing mode ""`},
		{Norm{Mode: ModeTorch, Mean: []float32{0.5}}, "need 3 means"},
		{Norm{Mode: ModeTorch, Mean: []float32{0.5, 0.5, 0.5}}, "need 3 standard deviations"},
		{Norm{Mode: ModeTorch, Mean: []float32{0, 0, 0}, Std: []float32{1, 0, 1}}, "of channel 1 must be positive"},
		{Norm{Mode: ModeTorch, Scale: 2}, "takes no scale"},
		{Norm{Mode: ModeCaffe, Mean: []float32{1, 2, 3}}, "caffe mode takes no mean"},
		{Norm{Mode: ModeTF, BGR: true}, "tf mode takes no"},
		{Norm{Mode: ModeCustom}, "need 3 means"},
		{Norm{Mode: ModeCustom, Mean: []float32{0, float32(math.NaN()), 0}}, "mean NaN of channel 1"},
		{Norm{Mode: ModeCustom, Mean: []float32{0, 0, 0}, Scale: float32(math.Inf(1))}, "not finite"},
	}
	for _, tc := range tests {
		_, err := NewNormalizer(tc.norm)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.norm, err, tc.want)
		}
	}
}

func TestShorterSide(t *testing.T) {
	tests := []struct{ w, h, s, ww, wh int }{
		{500, 375, 256, 341, 256},
		{375, 500, 256, 256, 341},
		{32, 32, 32, 32, 32},
		{640, 480, 224, 298, 224}, // 298.67 truncated
		{1000, 3, 5, 1666, 5},
		{3, 4, 3, 3, 4},
	}
	for _, tc := range tests {
		if w, h := ShorterSide(tc.w, tc.h, tc.s); w != tc.ww || h != tc.wh {
			t.Errorf("ShorterSide(%d, %d, %d) = %d, %d; want %d, %d", tc.w, tc.h, tc.s, w, h, tc.ww, tc.wh)
		}
	}
}

func TestCenterCropOffsets(t *testing.T) {
	tests := []struct{ n, c, want int }{
		{256, 224, 16},
		{5, 2, 2}, // round(1.5) = 2
		{7, 2, 2}, // round(2.5) = 2, Python's half-to-even
		{9, 2, 4}, // round(3.5) = 4
		{4, 4, 0},
		{3, 6, -1}, // padded 1 before, 2 after
		{3, 5, -1},
	}
	for _, tc := range tests {
		if got := cropOffset(tc.n, tc.c); got != tc.want {
			t.Errorf("cropOffset(%d, %d) = %d, want %d", tc.n, tc.c, got, tc.want)
		}
	}
	img := NewImage(3, 1)
	copy(img.Pix, []uint8{1, 2, 3, 4, 5, 6, 7, 8, 9})
	got := CenterCrop(img, 6, 2)
	wantR := []uint8{0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0} // 1 column before, 2 after; 1 row below
	if !bytes.Equal(got.Plane(0), wantR) {
		t.Errorf("padded crop R plane %v, want %v", got.Plane(0), wantR)
	}
}

func TestResizeIdentityAndPanics(t *testing.T) {
	img := decodeTestImage(t, "small.png")
	if got := Resize(img, img.W, img.H); !bytes.Equal(got.Pix, img.Pix) || got == img {
		t.Error("same-size resize is not a copy")
	}
	defer func() {
		if recover() == nil {
			t.Error("resize to 0x5 did not panic")
		}
	}()
	Resize(img, 0, 5)
}

func TestPreprocessorSteadyStateAllocations(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Preprocessor
	}{
		{"imagenet", Preprocessor{Resize: 96, W: 80, H: 80}},
		{"direct", Preprocessor{W: 32, H: 32}},
	} {
		img := decodeTestImage(t, "big.png")
		dst := make([]float32, 4*3*tc.p.W*tc.p.H)
		if err := tc.p.Write(dst, 0, img); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(20, func() {
			if err := tc.p.Write(dst, 3, img); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per image in steady state", tc.name, allocs)
		}
	}
	p := Preprocessor{W: 0, H: 5}
	if _, err := p.Prepare(NewImage(2, 2)); err == nil {
		t.Error("zero-width preprocessor accepted")
	}
}

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeErrors(t *testing.T) {
	good, err := os.ReadFile("testdata/images/natural.png")
	if err != nil {
		t.Fatal(err)
	}
	jpg, err := os.ReadFile("testdata/images/natural420.jpg")
	if err != nil {
		t.Fatal(err)
	}
	// A PNG header claiming 100000×100000 pixels and no pixel data: the
	// limit must refuse it from the header, before decoding.
	bomb := append([]byte(nil), good[:33]...)
	bomb[16], bomb[17], bomb[18], bomb[19] = 0, 1, 0x86, 0xa0 // width 100000
	bomb[20], bomb[21], bomb[22], bomb[23] = 0, 1, 0x86, 0xa0 // height 100000
	binary.BigEndian.PutUint32(bomb[29:], crc32.ChecksumIEEE(bomb[12:29]))
	tests := []struct {
		name    string
		data    []byte
		dec     Decoder
		wantErr error
		want    string
	}{
		{"notes.jpg", []byte("hello, world"), Decoder{}, ErrNotImage, "notes.jpg: not a supported image (unknown format"},
		{"empty.png", nil, Decoder{}, ErrNotImage, "empty file"},
		{"half.png", good[:len(good)/2], Decoder{}, nil, "half.png: unreadable png: truncated or corrupt file"},
		{"half.jpg", jpg[:len(jpg)/2], Decoder{}, nil, "half.jpg: unreadable jpeg: truncated or corrupt file"},
		{"header.jpg", jpg[:4], Decoder{}, nil, "header.jpg: unreadable jpeg header"},
		{"bomb.png", bomb, Decoder{}, ErrTooLarge, "bomb.png: image too large: 100000x100000 is 10000000000 pixels, over the limit of 89478485"},
		{"limit.png", good, Decoder{MaxPixels: 1000}, ErrTooLarge, "93x61 is 5673 pixels, over the limit of 1000"},
		{"bytes.png", good, Decoder{MaxBytes: 100}, ErrTooLarge, "bytes, over the limit of 100"},
	}
	for _, tc := range tests {
		img, _, err := tc.dec.Decode(tc.data, tc.name)
		if err == nil || img != nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
			t.Errorf("%s: got %q, want %q (%v)", tc.name, err, tc.want, tc.wantErr)
		}
	}
	// Read stops at MaxBytes+1 and reports the limit.
	d := Decoder{MaxBytes: 100}
	if _, err := d.Read(bytes.NewReader(good), "big.png"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Read over MaxBytes: %v", err)
	}
	if _, err := DecodeFile(filepath.Join(t.TempDir(), "missing.png")); err == nil || !strings.Contains(err.Error(), "missing.png") {
		t.Errorf("missing file: %v", err)
	}
}

func TestIsImageName(t *testing.T) {
	for name, want := range map[string]bool{
		"a.jpg": true, "B.JPEG": true, "c.png": true, "d.Gif": true, "e.bmp": true, "f.webp": true,
		"g.txt": false, "h": false, "jpg": false, ".DS_Store": false, "i.tiff": false,
	} {
		if IsImageName(name) != want {
			t.Errorf("IsImageName(%q) = %v", name, !want)
		}
	}
}

func TestFromImageKinds(t *testing.T) {
	base := decodeTestImage(t, "small.png")
	w, h := base.W, base.H
	nrgba := image.NewNRGBA(image.Rect(0, 0, w+4, h+3))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, b := base.RGB(x, y)
			nrgba.SetNRGBA(x+2, y+1, color.NRGBA{r, g, b, uint8(x * 9)})
		}
	}
	sub := nrgba.SubImage(image.Rect(2, 1, 2+w, 1+h))
	if got := FromImage(sub); !bytes.Equal(got.Pix, base.Pix) {
		t.Error("NRGBA sub-image: colours changed")
	}
	// Premultiplied RGBA: un-premultiplied, as NRGBA would be.
	rgba := image.NewRGBA(image.Rect(0, 0, 1, 1))
	rgba.SetRGBA(0, 0, color.RGBA{50, 100, 0, 200})
	if r, g, b := FromImage(rgba).RGB(0, 0); r != 63 || g != 127 || b != 0 {
		t.Errorf("premultiplied (50,100,0,200) gave %d,%d,%d", r, g, b)
	}
	g16 := image.NewGray16(image.Rect(0, 0, 1, 1))
	g16.SetGray16(0, 0, color.Gray16{0xabcd})
	if r, g, b := FromImage(g16).RGB(0, 0); r != 0xab || g != 0xab || b != 0xab {
		t.Errorf("gray16 0xabcd gave %d,%d,%d", r, g, b)
	}
	cmyk := image.NewCMYK(image.Rect(0, 0, 1, 1))
	cmyk.SetCMYK(0, 0, color.CMYK{0, 255, 255, 0})
	if r, g, b := FromImage(cmyk).RGB(0, 0); r != 255 || g != 0 || b != 0 {
		t.Errorf("CMYK red gave %d,%d,%d", r, g, b)
	}
	// YCbCr sub-images and 4:1:1 take the nearest-chroma path.
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, base, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	m, err := jpeg.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	ycc := m.(*image.YCbCr)
	full := FromYCbCr(ycc)
	part := FromImage(ycc.SubImage(image.Rect(2, 2, 10, 8)))
	if part.W != 8 || part.H != 6 {
		t.Fatalf("sub-image %dx%d", part.W, part.H)
	}
	y411 := image.NewYCbCr(image.Rect(0, 0, 8, 2), image.YCbCrSubsampleRatio411)
	for i := range y411.Y {
		y411.Y[i] = 100
	}
	for i := range y411.Cb {
		y411.Cb[i], y411.Cr[i] = 128, 128
	}
	if r, g, b := FromYCbCr(y411).RGB(7, 1); r != 100 || g != 100 || b != 100 {
		t.Errorf("4:1:1 gray gave %d,%d,%d", r, g, b)
	}
	// The nearest path and the fancy path agree within a few levels.
	for y := 0; y < part.H; y++ {
		for x := 0; x < part.W; x++ {
			r1, _, _ := part.RGB(x, y)
			r2, _, _ := full.RGB(x+2, y+2)
			if d := int(r1) - int(r2); d > 40 || d < -40 {
				t.Fatalf("sub-image pixel %d,%d: %d vs %d", x, y, r1, r2)
			}
		}
	}
	if got := FromImage(base); !bytes.Equal(got.Pix, base.Pix) {
		t.Error("copy of an *Image changed it")
	}
	if c := base.At(0, 0).(color.RGBA); c.A != 255 || base.Bounds() != image.Rect(0, 0, w, h) {
		t.Error("image.Image methods")
	}
	if _, err := FromPlanar(32, 32, make([]byte, 3071)); err == nil {
		t.Error("FromPlanar accepted a short buffer")
	}
	// An encoded *Image round-trips through PNG.
	back, err := png.Decode(bytes.NewReader(encodePNG(t, base)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(FromImage(back).Pix, base.Pix) {
		t.Error("PNG round trip of an *Image")
	}
}

func BenchmarkDecodeJPEG32(b *testing.B) {
	// A 32×32 4:2:0 JPEG like those of the CIFAR-10 JPEG archive.
	var buf bytes.Buffer
	jpeg.Encode(&buf, Resize(decodeTestImage(b, "natural.png"), 32, 32), &jpeg.Options{Quality: 75})
	data := buf.Bytes()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data, "x.jpg"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkImageNetPipeline: a 500×375 JPEG decoded, Resize(256),
// CenterCrop(224), normalised into a batch.
func BenchmarkImageNetPipeline(b *testing.B) {
	var buf bytes.Buffer
	jpeg.Encode(&buf, Resize(decodeTestImage(b, "big.png"), 500, 375), &jpeg.Options{Quality: 90})
	data := buf.Bytes()
	p := Preprocessor{Resize: 256, W: 224, H: 224}
	dst := make([]float32, 3*224*224)
	b.ReportAllocs()
	for b.Loop() {
		img, err := Decode(data, "x.jpg")
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Write(dst, 0, img); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResize500to256(b *testing.B) {
	img := Resize(decodeTestImage(b, "big.png"), 500, 375)
	var r Resizer
	var dst *Image
	for b.Loop() {
		dst = r.Resize(dst, img, 341, 256)
	}
}

// TestGIFFrameOffset decodes a GIF whose first frame covers part of the
// screen: it is placed at its offset on a black canvas of the screen size.
func TestGIFFrameOffset(t *testing.T) {
	pal := color.Palette{color.RGBA{0, 0, 0, 255}, color.RGBA{200, 100, 50, 255}}
	frame := image.NewPaletted(image.Rect(2, 1, 4, 3), pal)
	for i := range frame.Pix {
		frame.Pix[i] = 1
	}
	var b bytes.Buffer
	err := gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{frame}, Delay: []int{0},
		Config: image.Config{ColorModel: pal, Width: 6, Height: 5}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := Decode(b.Bytes(), "frame.gif")
	if err != nil {
		t.Fatal(err)
	}
	if img.W != 6 || img.H != 5 {
		t.Fatalf("%dx%d, want the 6x5 screen", img.W, img.H)
	}
	for y := 0; y < 5; y++ {
		for x := 0; x < 6; x++ {
			r, g, bl := img.RGB(x, y)
			inside := x >= 2 && x < 4 && y >= 1 && y < 3
			if inside != (r == 200 && g == 100 && bl == 50) || (!inside && r+g+bl != 0) {
				t.Fatalf("pixel %d,%d = %d,%d,%d", x, y, r, g, bl)
			}
		}
	}
}
