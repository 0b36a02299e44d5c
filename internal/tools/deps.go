//go:build tools

// Package tools pins the module dependencies before the code that uses them lands.
package tools

import (
	_ "github.com/MicahParks/keyfunc/v3"
	_ "github.com/VictoriaMetrics/metrics"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/kelseyhightower/envconfig"
	_ "github.com/patrickmn/go-cache"
	_ "github.com/valyala/fasthttp"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/crypto/bcrypt"
	_ "golang.org/x/time/rate"
	_ "gopkg.in/yaml.v3"
)
