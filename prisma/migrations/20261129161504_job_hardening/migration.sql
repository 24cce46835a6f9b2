-- AlterTable
ALTER TABLE "Job" ADD COLUMN     "assetsPurgedAt" TIMESTAMP(3),
ADD COLUMN     "pendingKeys" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "stageMs" JSONB;

