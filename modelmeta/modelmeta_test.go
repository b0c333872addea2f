package modelmeta

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	props := map[string]string{
		MetaClasses:    `["cat","dog"]`,
		MetaPreprocess: `{"scale":0.5,"mean":[1,2,3],"std":[4,5,6],"layout":"NCHW","color":"RGB","input_size":[3,32,32],"preset":"cifar10"}`,
	}
	classes, err := Classes(props)
	if err != nil || !slices.Equal(classes, []string{"cat", "dog"}) {
		t.Errorf("classes %v, %v", classes, err)
	}
	p, err := PreprocessingOf(props)
	if err != nil || p.Scale != 0.5 || !slices.Equal(p.Std, []float32{4, 5, 6}) || p.Preset != "cifar10" || !slices.Equal(p.InputSize, []int{3, 32, 32}) {
		t.Errorf("preprocessing %+v, %v", p, err)
	}
	if c, err := Classes(nil); c != nil || err != nil {
		t.Errorf("no classes: %v, %v", c, err)
	}
	if p, err := PreprocessingOf(map[string]string{}); p != nil || err != nil {
		t.Errorf("no preprocessing: %v, %v", p, err)
	}
	if _, err := ParseClasses("{"); err == nil {
		t.Error("bad classes parsed")
	}
	if _, err := ParsePreprocessing("[]"); err == nil {
		t.Error("bad preprocessing parsed")
	}
}
