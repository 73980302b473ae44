package testbed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/awserr"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/s3"
)

// createBucket creates the server's bucket (one already there and ours is
// fine) and checks that it can be reached.
func createBucket(ctx context.Context, s *S3) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	sess, err := session.NewSession(&aws.Config{
		Endpoint:         aws.String(s.Endpoint),
		Region:           aws.String(s.Region),
		Credentials:      credentials.NewStaticCredentials(s.AccessKey, s.SecretKey, ""),
		S3ForcePathStyle: aws.Bool(true),
		DisableSSL:       aws.Bool(true),
	})
	if err != nil {
		return err
	}
	client := s3.New(sess)
	_, err = client.CreateBucketWithContext(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
	var aerr awserr.Error
	if err != nil && !(errors.As(err, &aerr) && aerr.Code() == s3.ErrCodeBucketAlreadyOwnedByYou) {
		return fmt.Errorf("creating bucket %s: %w", s.Bucket, err)
	}
	if _, err := client.HeadBucketWithContext(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.Bucket)}); err != nil {
		return fmt.Errorf("bucket %s after creating it: %w", s.Bucket, err)
	}
	return nil
}
