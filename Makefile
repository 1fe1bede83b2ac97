# playerguard: build, release, image and checks. `make help` lists the targets.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# OCI labels of the image (deploy/Dockerfile): the repository URL and the SPDX
# licence expression, once the project has them.
SOURCE ?=
LICENSES ?= NOASSERTION

LDFLAGS := -s -w -X main.version=$(VERSION)
GOBUILD := CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)"
PLATFORMS := linux/amd64 linux/arm64

.PHONY: help build release image test check docs clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## ./playerguard for this machine, version stamped
	$(GOBUILD) -o playerguard ./cmd/playerguard

release: ## static dist/playerguard-linux-{amd64,arm64}, version stamped
	@mkdir -p dist
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "GOOS=$$os GOARCH=$$arch -> dist/playerguard-$$os-$$arch ($(VERSION))"; \
		GOOS=$$os GOARCH=$$arch $(GOBUILD) -o dist/playerguard-$$os-$$arch ./cmd/playerguard; \
	done
	cd dist && sha256sum playerguard-* > SHA256SUMS

image: ## container image playerguard:$(VERSION) (needs a Docker engine)
	docker build -f deploy/Dockerfile \
		--build-arg VERSION=$(VERSION) --build-arg SOURCE=$(SOURCE) --build-arg LICENSES=$(LICENSES) \
		-t playerguard:$(VERSION) .

test: ## the README's test command
	go vet ./... && go test -race ./...

check: ## the Kubernetes manifests' tests (their own Go module)
	cd deploy/kubernetes && go vet ./... && go test ./...

docs: ## regenerate docs/configuration.md from the flags
	PLAYERGUARD_UPDATE_DOCS=1 go test -count=1 -run TestConfigurationReference ./cmd/playerguard

clean: ## remove build output
	rm -rf dist playerguard
