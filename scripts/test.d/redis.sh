# The store's tests start their own redis-server (single and cluster) on free loopback ports.
need_apt redis-server redis-server redis-tools
need_apt redis-cli redis-tools
