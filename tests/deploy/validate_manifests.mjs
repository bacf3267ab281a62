// Validates deploy/: every Kubernetes object against the API schemas of the
// npm package kubernetes-models (offline), and the facts the files must agree
// on: shard lists, names, selectors, ports, the image's user and group,
// probes, QoS, anti-affinity, the NetworkPolicy, image references, backups.
//
//   node validate_manifests.mjs DEPLOY_DIR
//
// Finds kubernetes-models and js-yaml under $NODE_MODULES_DIR, else under
// `npm root -g` (scripts/install-deps.sh installs them there). Prints one line
// per check and exits 1 if any failed.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const deployDir = process.argv[2];
if (!deployDir) {
  console.error("usage: node validate_manifests.mjs DEPLOY_DIR");
  process.exit(2);
}
const modulesDir =
  process.env.NODE_MODULES_DIR ||
  execFileSync("npm", ["root", "-g"], { encoding: "utf8" }).trim();
async function importModule(path) {
  const file = join(modulesDir, path);
  if (!existsSync(file)) {
    console.error(`missing ${file}: run scripts/install-deps.sh`);
    process.exit(2);
  }
  return import(pathToFileURL(file));
}
const yaml = await importModule("js-yaml/dist/js-yaml.mjs");

let passed = 0;
let failed = 0;
function check(what, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`ok   ${what}`);
  } else {
    failed++;
    console.log(`FAIL ${what}${detail ? ": " + detail : ""}`);
  }
}
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
// True when every label `selector` asks for is in `labels`.
const selects = (selector, labels) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

// The Kubernetes objects, validated by the schema of their apiVersion/kind.
const k8sDir = join(deployDir, "k8s");
const manifests = readdirSync(k8sDir)
  .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
  .sort();
const objects = {};
for (const file of manifests) {
  const docs = yaml.loadAll(readFileSync(join(k8sDir, file), "utf8"));
  for (const obj of docs) {
    const [group, version] = obj.apiVersion.includes("/")
      ? obj.apiVersion.split("/")
      : ["", obj.apiVersion];
    const modulePath = join(
      "kubernetes-models",
      group === "" ? version : join(group, version),
      `${obj.kind}.js`,
    );
    const module = await importModule(modulePath);
    let error = "";
    try {
      new module[obj.kind](obj).validate();
    } catch (e) {
      error = e.message;
    }
    check(`${file}: ${obj.kind}/${obj.metadata.name} matches its schema`,
          error === "", error);
    objects[obj.kind] = obj;
  }
}

const kustomization = yaml.load(
  readFileSync(join(k8sDir, "kustomization.yaml"), "utf8"));
check("kustomization.yaml lists every manifest",
      same([...kustomization.resources].sort(), manifests),
      `${kustomization.resources} vs ${manifests}`);

const {
  StatefulSet: sts,
  Service: svc,
  PodDisruptionBudget: pdb,
  Job: job,
  CronJob: cronJob,
} = objects;
// The pods that call the shards: the trainer's and the backups'.
const clientPods = [job.spec.template, cronJob.spec.jobTemplate.spec.template];
const pod = sts.spec.template;
const shard = pod.spec.containers[0];
const port = shard.ports.find((p) => p.name === "grpc").containerPort;
check("the Service is headless and is the StatefulSet's serviceName",
      svc.spec.clusterIP === "None" && sts.spec.serviceName ===
        svc.metadata.name);
check("the Service targets the grpc port",
      svc.spec.ports[0].port === port && svc.spec.ports[0].targetPort ===
        "grpc");
check("the StatefulSet, Service and PodDisruptionBudget select the shards",
      selects(sts.spec.selector.matchLabels, pod.metadata.labels) &&
        selects(svc.spec.selector, pod.metadata.labels) &&
        selects(pdb.spec.selector.matchLabels, pod.metadata.labels));
check("the PodDisruptionBudget selects no client pod",
      clientPods.every(
        (p) => !selects(pdb.spec.selector.matchLabels, p.metadata.labels)));
check("every probe asks the grpc port",
      ["startupProbe", "readinessProbe", "livenessProbe"].every(
        (p) => shard[p]?.grpc?.port === port));
// Readiness follows the store (service ""); startup and liveness only the
// process (service "liveness"), since a restart frees no disk.
check("readiness asks the server's health, startup and liveness its liveness",
      shard.readinessProbe.grpc.service === undefined &&
        shard.startupProbe.grpc.service === "liveness" &&
        shard.livenessProbe.grpc.service === "liveness");
const resources = (c) => c.resources ?? {};
check("every shard container is Guaranteed (requests = limits, cpu and memory)",
      pod.spec.containers.every((c) =>
        ["cpu", "memory"].every((r) =>
          resources(c).limits?.[r] !== undefined &&
            String(resources(c).requests?.[r] ?? resources(c).limits[r]) ===
              String(resources(c).limits[r]))));
const antiAffinity = pod.spec.affinity?.podAntiAffinity ?? {};
check("no two shards share a node (required anti-affinity on hostname)",
      antiAffinity.preferredDuringSchedulingIgnoredDuringExecution ===
        undefined &&
        (antiAffinity.requiredDuringSchedulingIgnoredDuringExecution ?? [])
          .some((t) => t.topologyKey === "kubernetes.io/hostname" &&
            selects(t.labelSelector.matchLabels, pod.metadata.labels)));
{
  const dir = join(k8sDir, "single-node");
  const overlay = yaml.load(readFileSync(join(dir, "kustomization.yaml"),
                                         "utf8"));
  const patch = yaml.load(readFileSync(join(dir, overlay.patches[0].path),
                                       "utf8"));
  const a = patch.spec.template.spec.affinity.podAntiAffinity;
  check("single-node/ builds on the base and only prefers spreading",
        overlay.resources.includes("../") &&
          a.requiredDuringSchedulingIgnoredDuringExecution === null &&
          a.preferredDuringSchedulingIgnoredDuringExecution.some((t) =>
            t.podAffinityTerm.topologyKey === "kubernetes.io/hostname" &&
              selects(t.podAffinityTerm.labelSelector.matchLabels,
                      pod.metadata.labels)));
}
const claimMountedAt = (claim, path) =>
  sts.spec.volumeClaimTemplates.some((t) => t.metadata.name === claim) &&
  shard.volumeMounts.some((m) => m.name === claim && m.mountPath === path);
check("the data volume is a claim template mounted at /data",
      claimMountedAt("data", "/data"));
check("the backup volume is a claim template mounted where backups go",
      claimMountedAt("backup", "/backup") &&
        cronJob.spec.jobTemplate.spec.template.spec.containers[0].args[0]
          .includes(" /backup/"));
check("the shards write backups only under the backup volume",
      [...(shard.command ?? []), ...(shard.args ?? [])].join(" ")
        .includes("--backup-root=/backup"));
check("the grace period covers varscoped's 10 s drain",
      pod.spec.terminationGracePeriodSeconds > 10);

// The image's user must be the one the pods run as (it owns /data).
const containerfile = readFileSync(join(deployDir, "Containerfile"), "utf8");
const uid = Number(/useradd [^\n]*--uid (\d+)/.exec(containerfile)?.[1]);
const gid = Number(/groupadd [^\n]*--gid (\d+)/.exec(containerfile)?.[1]);
check(`the image's user has uid = gid (${uid}:${gid})`,
      uid === gid && new RegExp(`useradd [^\\n]*--gid ${gid} `)
        .test(containerfile));
check(`the pods run as the image's user and group (${uid}:${gid})`,
      [pod, ...clientPods].every((p) =>
        p.spec.securityContext.runAsUser === uid &&
          p.spec.securityContext.runAsGroup === gid) &&
        pod.spec.securityContext.fsGroup === gid);
check("the image serves on the port the manifests use",
      containerfile.includes(`EXPOSE ${port}`) &&
        containerfile.includes(`--listen=0.0.0.0:${port}`));

// Workers must list exactly the StatefulSet's pods, in ordinal order.
const shards = Array.from(
  { length: sts.spec.replicas },
  (_, i) => `${sts.metadata.name}-${i}.${svc.metadata.name}:${port}`);
const clientContainers = clientPods.flatMap(
  (p) => [...(p.spec.initContainers ?? []), ...p.spec.containers]);
// The shard list of a client's environment: VARSCOPE_SERVER, else
// TF_CONFIG's cluster.ps (the order every client reads them in).
function checkClientEnv(what, env, expected) {
  check(`${what}: finds the shards in VARSCOPE_SERVER or TF_CONFIG`,
        env.VARSCOPE_SERVER !== undefined || env.TF_CONFIG !== undefined);
  if (env.VARSCOPE_SERVER !== undefined) {
    check(`${what}: VARSCOPE_SERVER lists the shards in order`,
          same(env.VARSCOPE_SERVER.split(","), expected),
          env.VARSCOPE_SERVER);
  }
  if (env.TF_CONFIG !== undefined) {
    check(`${what}: TF_CONFIG cluster.ps lists the shards in order`,
          same(JSON.parse(env.TF_CONFIG).cluster.ps, expected),
          env.TF_CONFIG);
  }
}
for (const c of clientContainers) {
  checkClientEnv(`container ${c.name}`,
                 Object.fromEntries(c.env.map((e) => [e.name, e.value])),
                 shards);
}
// The example trainer finds the shards as a TensorFlow worker would.
for (const c of [...job.spec.template.spec.initContainers,
                 ...job.spec.template.spec.containers]) {
  check(`trainer container ${c.name}: TF_CONFIG alone names the shards`,
        c.env.every((e) => e.name !== "VARSCOPE_SERVER") &&
          c.env.some((e) => e.name === "TF_CONFIG"));
}
const wait = job.spec.template.spec.initContainers[0];
check("the trainer waits for the shards with a deadline",
      /deadline=\$\(\( \$\(date \+%s\) \+ \d+ \)\)/.test(
        wait.args.join(" ")) && wait.args.join(" ").includes("exit 3"));
// Each shard is started with that list and its ordinal as its index.
const shardCommand =
  [...(shard.command ?? []), ...(shard.args ?? [])].join(" ");
check("the shards run varscoped with the cluster's shard list in order",
      shardCommand.includes(`exec varscoped --listen=0.0.0.0:${port} ` +
                            "--data-dir=/data ") &&
        / --cluster=(\S+)/.exec(shardCommand)?.[1] === shards.join(","),
      shardCommand);
check("each shard's index is its pod's ordinal",
      shardCommand.includes('--shard-index="${HOSTNAME##*-}"'),
      shardCommand);
const images = kustomization.images.map((i) => i.name);
check("kustomization.yaml sets every image the manifests use",
      [shard, ...clientContainers].every((c) => images.includes(c.image)));
// Pinned: a registry host, a tag for people, a digest for what runs.
for (const i of kustomization.images) {
  check(`kustomization.yaml pins ${i.name} by registry, tag and digest`,
        /^[a-z0-9.-]+(:\d+)?\/[a-z0-9._/-]+$/.test(i.newName) &&
          i.newName.split("/")[0].includes(".") &&
          /^\d+\.\d+\.\d+$/.test(i.newTag) &&
          /^sha256:[0-9a-f]{64}$/.test(i.digest),
        JSON.stringify(i));
}

// Only the clients reach the shards' gRPC port.
const netpol = objects.NetworkPolicy;
const grpcRules = netpol.spec.ingress.filter((r) =>
  r.ports.some((p) => p.port === "grpc" || p.port === port));
check("the NetworkPolicy selects the shards and restricts ingress",
      selects(netpol.spec.podSelector.matchLabels, pod.metadata.labels) &&
        netpol.spec.policyTypes.includes("Ingress"));
check("only labelled client pods of the namespace reach the grpc port",
      grpcRules.length === 1 && grpcRules[0].from.length === 1 &&
        grpcRules[0].from[0].namespaceSelector === undefined &&
        Object.keys(grpcRules[0].from[0].podSelector?.matchLabels ?? {})
          .length > 0,
      JSON.stringify(grpcRules));
check("the trainer's and the backups' pods carry the client label",
      clientPods.every((p) => selects(
        grpcRules[0]?.from[0].podSelector.matchLabels, p.metadata.labels)));
check("the metrics port is open to labelled scrapers only",
      netpol.spec.ingress.filter((r) => r !== grpcRules[0]).every((r) =>
        r.from?.every((f) => Object.keys(f.podSelector?.matchLabels ?? {})
          .length > 0)));

// Backups: every shard even when one fails, pruned, bounded in time.
const backupScript = cronJob.spec.jobTemplate.spec.template.spec
  .containers[0].args.join(" ");
check("the backup CronJob prunes (--keep), goes on past a failed shard and " +
        "names the failed ones",
      /backup \/backup\/\S+ --keep=/.test(backupScript) &&
        !/\|\|\s*exit/.test(backupScript) &&
        /failed="\$failed \$shard"/.test(backupScript) &&
        backupScript.includes("failed on:$failed"),
      backupScript);
check("the backup CronJob has a time zone and deadlines",
      typeof cronJob.spec.timeZone === "string" &&
        cronJob.spec.startingDeadlineSeconds > 0 &&
        cronJob.spec.jobTemplate.spec.activeDeadlineSeconds > 0);

// The secure profile (k8s/secure): its Secret matches its schema; each
// client's token has the role it needs in the token file; the shards read
// that file and the clients send those tokens.
const secureDir = join(k8sDir, "secure");
const secret = yaml.load(readFileSync(join(secureDir, "tokens.yaml"), "utf8"));
{
  const module = await importModule(join("kubernetes-models", "v1",
                                         "Secret.js"));
  let error = "";
  try {
    new module.Secret(secret).validate();
  } catch (e) {
    error = e.message;
  }
  check("secure/tokens.yaml: Secret matches its schema", error === "", error);
}
const roles = Object.fromEntries(
  secret.stringData.tokens.split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((w) => w[0] !== "" && !w[0].startsWith("#"))
    .map((w) => [w[0], w[1] ?? "admin"]));
for (const [key, role] of [["worker-token", "write"],
                           ["backup-token", "admin"],
                           ["dashboard-token", "read"]]) {
  check(`secure: ${key} has role ${role}`,
        roles[secret.stringData[key]] === role, JSON.stringify(roles));
}
const securePatches = ["statefulset-secure.yaml", "clients-secure.yaml"]
  .map((f) => readFileSync(join(secureDir, f), "utf8"));
const secureKustomization = yaml.load(
  readFileSync(join(secureDir, "kustomization.yaml"), "utf8"));
check("secure/kustomization.yaml builds on the base and patches both",
      secureKustomization.resources.includes("../") &&
        same(secureKustomization.patches.map((p) => p.path).sort(),
             ["clients-secure.yaml", "statefulset-secure.yaml"]));
check("secure: the shards read the token file with TLS and --backup-root",
      ["--auth-token-file=/etc/varscope/tokens/tokens", "--tls-cert-file=",
       "--tls-key-file=", "--backup-root=/backup"].every(
        (flag) => securePatches[0].includes(flag)));
check("secure: workers send the write token, the CronJob the admin token",
      /key: worker-token[\s\S]*key: backup-token/.test(securePatches[1]));

// compose.yaml: one volume per shard service; the workers list them all.
const compose = yaml.load(readFileSync(join(deployDir, "compose.yaml"),
  "utf8"));
const shardServices = Object.keys(compose.services)
  .filter((name) => /^varscope-\d+$/.test(name))
  .sort((a, b) => Number(a.split("-")[1]) - Number(b.split("-")[1]));
check("compose.yaml's shards are varscope-0..N-1",
      shardServices.length > 1 && shardServices.every(
        (name, i) => name === `varscope-${i}`));
const volumes = shardServices.map(
  (name) => compose.services[name].volumes[0].split(":"));
check("each compose shard has its own named volume at /data",
      volumes.every(([volume, path], i) =>
        volume === shardServices[i] && path === "/data" &&
          volume in compose.volumes));
check("every compose shard mounts the backups volume at /backup",
      shardServices.every((name) => compose.services[name].volumes.includes(
        "backups:/backup")) && "backups" in compose.volumes);
check("every compose shard writes backups only under /backup",
      shardServices.every((name) => compose.services[name].command.includes(
        "--backup-root=/backup")));
// compose.secure.yaml: the same shards, each with TLS, the token file and
// --backup-root, its volumes kept; the trainer sends the worker token.
const secure = yaml.load(readFileSync(join(deployDir, "compose.secure.yaml"),
                                      "utf8"));
check("compose.secure.yaml secures every shard, keeping its volumes",
      shardServices.every((name) => {
        const s = secure.services[name];
        return s !== undefined &&
          same(s.command.slice(0, compose.services[name].command.length),
               compose.services[name].command) &&
          ["--backup-root=/backup", "--auth-token-file=/etc/varscope/tokens",
           "--tls-cert-file=/etc/varscope/server.pem",
           "--tls-key-file=/etc/varscope/server.key"].every(
            (flag) => s.command.includes(flag)) &&
          compose.services[name].volumes.every((v) => s.volumes.includes(v));
      }));
check("compose.secure.yaml: the trainer uses TLS and the worker token",
      secure.services.trainer.environment.VARSCOPE_TLS_CA ===
        "/etc/varscope/ca.pem" &&
        secure.services.trainer.command[0].includes(
          "/etc/varscope/worker-token"));
const composeShards = shardServices.map((name) => `${name}:${port}`);
check("each compose shard is started as its shard of the whole list",
      shardServices.every((name, i) => {
        const command = compose.services[name].command;
        return command.includes(`--cluster=${composeShards.join(",")}`) &&
          command.includes(`--shard-index=${i}`);
      }));
for (const [name, service] of Object.entries(compose.services)) {
  const env = service.environment;
  if (!env) continue;
  checkClientEnv(`compose ${name}`, env, composeShards);
  check(`compose ${name}: depends on every shard`,
        same([...service.depends_on].sort(), [...shardServices].sort()));
}
// podman restarts only `always` containers after a reboot, and stops
// containers after 10 s whatever stop_grace_period says.
check("compose shards come back after a reboot (restart: always)",
      shardServices.every((n) => compose.services[n].restart === "always"));
check("compose shards drain within podman's 10 s stop timeout",
      shardServices.every((n) => compose.services[n].command.some((f) =>
        /^--drain-seconds=(\d+(\.\d+)?)$/.test(f) &&
          Number(f.split("=")[1]) <= 5)));

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
