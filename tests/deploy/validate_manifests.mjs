// Validates deploy/: every Kubernetes object against the API schemas of the
// npm package kubernetes-models (offline), and the facts the files must agree
// on: shard lists, names, selectors, ports and the image's user.
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
const claimMountedAt = (claim, path) =>
  sts.spec.volumeClaimTemplates.some((t) => t.metadata.name === claim) &&
  shard.volumeMounts.some((m) => m.name === claim && m.mountPath === path);
check("the data volume is a claim template mounted at /data",
      claimMountedAt("data", "/data"));
check("the backup volume is a claim template mounted where backups go",
      claimMountedAt("backup", "/backup") &&
        cronJob.spec.jobTemplate.spec.template.spec.containers[0].args[0]
          .includes(" /backup/"));
check("the grace period covers varscoped's 10 s drain",
      pod.spec.terminationGracePeriodSeconds > 10);

// The image's user must be the one the pods run as (it owns /data).
const containerfile = readFileSync(join(deployDir, "Containerfile"), "utf8");
const uid = Number(/useradd [^\n]*--uid (\d+)/.exec(containerfile)?.[1]);
check(`the pods run as the image's user (uid ${uid})`,
      pod.spec.securityContext.runAsUser === uid &&
        pod.spec.securityContext.fsGroup === uid &&
        clientPods.every((p) => p.spec.securityContext.runAsUser === uid));
check("the image serves on the port the manifests use",
      containerfile.includes(`EXPOSE ${port}`) &&
        containerfile.includes(`--listen=0.0.0.0:${port}`));

// Workers must list exactly the StatefulSet's pods, in ordinal order.
const shards = Array.from(
  { length: sts.spec.replicas },
  (_, i) => `${sts.metadata.name}-${i}.${svc.metadata.name}:${port}`);
const clientContainers = clientPods.flatMap(
  (p) => [...(p.spec.initContainers ?? []), ...p.spec.containers]);
for (const c of clientContainers) {
  const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
  check(`container ${c.name}: VARSCOPE_SERVER lists the shards in order`,
        same(env.VARSCOPE_SERVER?.split(","), shards), env.VARSCOPE_SERVER);
  if (env.TF_CONFIG !== undefined) {
    check(`container ${c.name}: TF_CONFIG cluster.ps lists the shards`,
          same(JSON.parse(env.TF_CONFIG).cluster.ps, shards), env.TF_CONFIG);
  }
}
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
      [shard, ...clientContainers].every(
        (c) => images.includes(c.image.split(":")[0])));

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
  check(`compose ${name}: VARSCOPE_SERVER lists the shards in order`,
        same(env.VARSCOPE_SERVER?.split(","), composeShards),
        env.VARSCOPE_SERVER);
  check(`compose ${name}: TF_CONFIG cluster.ps lists the shards in order`,
        same(JSON.parse(env.TF_CONFIG).cluster.ps, composeShards),
        env.TF_CONFIG);
  check(`compose ${name}: depends on every shard`,
        same([...service.depends_on].sort(), [...shardServices].sort()));
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
