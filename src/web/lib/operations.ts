/** The playground's GraphQL documents (checked against schema.graphql by test/web/operations.test.ts). */
const JOB_FIELDS = `id kind status progress model params error { code message }
  images { id url width height contentType bytes } text createdAt`;

export const VIEWER_QUERY = `query Viewer {
  viewer { tenant { id name } limits { ratePerMinute maxConcurrentJobs monthlyImageQuota }
    usage { images remainingImages inFlightImages } }
  models { id default demo maxImageSize }
}`;

export const JOB_QUERY = `query Job($id: ID!) { job(id: $id) { ${JOB_FIELDS} } }`;

export const JOBS_QUERY = `query Jobs($first: Int, $after: String) {
  jobs(first: $first, after: $after) {
    edges { cursor node { id kind status progress createdAt error { code message } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

export const GENERATE_MUTATION = `mutation Generate($input: GenerateInput!) { generate(input: $input) { ${JOB_FIELDS} } }`;

export const DESCRIBE_MUTATION = `mutation Describe($input: DescribeInput!) { describe(input: $input) { ${JOB_FIELDS} } }`;

export const CREATE_UPLOAD_MUTATION = `mutation CreateUpload($contentType: String!, $bytes: Int!) {
  createUpload(contentType: $contentType, bytes: $bytes) { id uploadUrl contentType maxBytes expiresAt }
}`;

export const CANCEL_JOB_MUTATION = `mutation CancelJob($id: ID!) { cancelJob(id: $id) { id status } }`;

export const JOB_EVENTS_SUBSCRIPTION = `subscription JobEvents($jobId: ID!, $afterSeq: Int) {
  jobEvents(jobId: $jobId, afterSeq: $afterSeq) {
    jobId seq type status at step totalSteps stage previewUrl textDelta text error { code message }
  }
}`;

export type JobStatus = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELED';
export type JobKind = 'GENERATE' | 'DESCRIBE';
export type JobImage = {
  id: string;
  url: string;
  width?: number | null;
  height?: number | null;
  contentType: string;
  bytes: number;
};
export type Job = {
  id: string;
  kind: JobKind;
  status: JobStatus;
  progress: number;
  model: string;
  params: Record<string, unknown>;
  error?: { code: string; message: string } | null;
  images: JobImage[];
  text?: string | null;
  createdAt: string;
};
export type JobSummary = Pick<Job, 'id' | 'kind' | 'status' | 'progress' | 'createdAt' | 'error'>;
export type JobEvent = {
  jobId: string;
  seq: number;
  type: 'STATUS' | 'PROGRESS' | 'PREVIEW' | 'TEXT_DELTA' | 'RESULT' | 'ERROR';
  status: JobStatus;
  at: string;
  step?: number | null;
  totalSteps?: number | null;
  stage?: string | null;
  previewUrl?: string | null;
  textDelta?: string | null;
  text?: string | null;
  error?: { code: string; message: string } | null;
};
export type Model = { id: string; default: boolean; demo: boolean; maxImageSize?: number | null };
export type Viewer = {
  tenant: { id: string; name: string };
  limits: { ratePerMinute: number; maxConcurrentJobs: number; monthlyImageQuota: number };
  usage: { images: number; remainingImages: number; inFlightImages: number };
};
export type Upload = {
  id: string;
  uploadUrl: string;
  contentType: string;
  maxBytes: number;
  expiresAt: string;
};

export const TERMINAL: ReadonlySet<JobStatus> = new Set(['SUCCEEDED', 'FAILED', 'CANCELED']);
