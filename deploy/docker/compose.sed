# deploy/haproxy.cfg inside docker-compose.cluster.yml: listen on every
# interface and reach the gateways by service name.
s/^    bind 127\.0\.0\.1:8080$/    bind :8080/
s/^    bind 127\.0\.0\.1:8404$/    bind :8404/
s/^    server gw\([123]\) 127\.0\.0\.1:800[123] check$/    server gw\1 gw\1:8000 check/
