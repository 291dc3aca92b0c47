package attest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseCgroupFixtures(t *testing.T) {
	const (
		uid = "2c48913c-b29f-11e7-9350-020968147796"
		cid = "9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961"
	)
	tests := []struct {
		file   string
		want   podContainer
		wantOK bool
	}{
		{file: "v1-cgroupfs-docker-burstable", want: podContainer{PodUID: uid, ContainerID: cid}, wantOK: true},
		{file: "v1-cgroupfs-guaranteed", want: podContainer{PodUID: uid, ContainerID: cid}, wantOK: true},
		{file: "v1-systemd-containerd-besteffort", want: podContainer{PodUID: uid, ContainerID: cid}, wantOK: true},
		{file: "v1-systemd-docker-guaranteed", want: podContainer{PodUID: uid, ContainerID: cid}, wantOK: true},
		{file: "v2-systemd-containerd-burstable", want: podContainer{PodUID: uid, ContainerID: cid}, wantOK: true},
		{file: "v2-systemd-crio-besteffort", want: podContainer{PodUID: uid, ContainerID: cid}, wantOK: true},
		{file: "v2-systemd-crio-conmon", want: podContainer{PodUID: uid, ContainerID: cid, Conmon: true}, wantOK: true},
		{file: "v2-cgroupfs-containerd", want: podContainer{PodUID: uid, ContainerID: cid}, wantOK: true},
		{file: "v2-nested-cgroupns", want: podContainer{PodUID: uid, ContainerID: cid}, wantOK: true},
		{file: "v2-pod-sandbox", wantOK: false},
		{file: "v2-host-process", wantOK: false},
		{file: "v1-host-process", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "cgroup", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := parseCgroup(data)
			if err != nil || ok != tt.wantOK || got != tt.want {
				t.Fatalf("parseCgroup = %+v, %v, %v; want %+v, %v", got, ok, err, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParseCgroupRefusesDisagreeingHierarchies(t *testing.T) {
	data := []byte("11:memory:/kubepods/pod2c48913c-b29f-11e7-9350-020968147796/9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961\n" +
		"1:name=systemd:/kubepods/pod3c48913c-b29f-11e7-9350-020968147796/9bca8d63d5fa610783847915bcff0ecac1273e5b4bed3f6fa1b07350e0135961\n")
	if _, _, err := parseCgroup(data); err == nil {
		t.Fatal("two pods in one cgroup file were accepted")
	}
}
