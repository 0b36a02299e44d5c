package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestEnvExampleListsEveryVariable: configs/scopegate.env.example names
// every SCOPEGATE_ variable of Config.
func TestEnvExampleListsEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../../configs/scopegate.env.example")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		name := "SCOPEGATE_" + typ.Field(i).Tag.Get("envconfig")
		if !strings.Contains(text, name+"=") {
			t.Errorf("scopegate.env.example lacks %s", name)
		}
	}
}
